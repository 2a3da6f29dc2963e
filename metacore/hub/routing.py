"""WebSocket routes of the hub: `/api/ws` (next to the REST API) and `/ws` (the upstream path)."""

from django.urls import re_path

from metacore.hub.consumer import HubConsumer

websocket_urlpatterns = [
    re_path(r"^api/ws/?$", HubConsumer.as_asgi()),
    re_path(r"^ws/?$", HubConsumer.as_asgi()),
]
