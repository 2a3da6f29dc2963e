"""Realtime discovery route (hub subsystem); the WebSocket routes are in metacore.hub.routing."""

from django.urls import re_path

from metacore.api.hub_views import RealtimeInfoView

urlpatterns = [
    re_path(r"^realtime/info/?$", RealtimeInfoView.as_view(), name="metacore-realtime-info"),
]
