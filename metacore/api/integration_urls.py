"""Outbound webhook and tool routes (mounted under `metacore/`); a trailing slash is optional."""

from django.urls import re_path

from metacore.api import integration_views as views

ID = r"[0-9A-Za-z-]{1,64}"

urlpatterns = [
    re_path(r"^webhooks/?$", views.SubscriptionListView.as_view(), name="metacore-webhooks"),
    re_path(
        r"^webhooks/in/(?P<addon_key>[A-Za-z0-9_.-]{1,64})/(?P<hook_key>[A-Za-z0-9_.-]{1,100})/?$",
        views.InboundWebhookView.as_view(),
        name="metacore-webhook-inbound",
    ),
    re_path(r"^webhooks/deliveries/?$", views.DeliveryListView.as_view(), name="metacore-webhook-deliveries"),
    re_path(
        rf"^webhooks/deliveries/(?P<delivery_id>{ID})/replay/?$",
        views.DeliveryReplayView.as_view(),
        name="metacore-webhook-delivery-replay",
    ),
    re_path(rf"^webhooks/(?P<sub_id>{ID})/?$", views.SubscriptionView.as_view(), name="metacore-webhook"),
    re_path(r"^events/?$", views.EventLogView.as_view(), name="metacore-events"),
    re_path(r"^tools/?$", views.ToolListView.as_view(), name="metacore-tools"),
    re_path(r"^tools/execute/?$", views.ToolExecuteView.as_view(), name="metacore-tools-execute"),
]
