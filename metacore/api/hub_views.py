"""`GET /api/realtime/info`: where a realtime client connects and which channels it may join
(the `RealtimeInfo` body of `@asteby/metacore-sdk`)."""

from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.conf import metacore_settings

PROTOCOL_VERSION = 1


def websocket_url(request, path="/api/ws"):
    """Absolute WebSocket URL on the host and scheme the client used (proxy-aware through
    Django's USE_X_FORWARDED_HOST / SECURE_PROXY_SSL_HEADER), unless METACORE["HUB_WS_URL"]
    names it: the hub served on another port than the HTTP API (`make run`)."""
    if metacore_settings.HUB_WS_URL:
        return metacore_settings.HUB_WS_URL
    scheme = "wss" if request.is_secure() else "ws"
    return f"{scheme}://{request.get_host()}{request.META.get('SCRIPT_NAME', '').rstrip('/')}{path}"


class RealtimeInfoView(EnvelopeErrorsMixin, APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        tenant = metacore_settings.TENANT_RESOLVER(request.user, request)
        channels = ([f"org:{tenant}"] if tenant not in (None, "") else []) + [f"user:{request.user.pk}"]
        data = {
            "enabled": True,
            "ws_url": websocket_url(request),
            "channels": channels,
            "protocol": PROTOCOL_VERSION,
            "coalesce_ms": metacore_settings.HUB_COALESCE_MS,
            "max_events_per_sec": 0,  # no fixed rate: a bounded backlog per connection instead
            "max_backlog": metacore_settings.HUB_MAX_BACKLOG,
            "max_models_per_connection": metacore_settings.HUB_MAX_MODELS_PER_CONNECTION,
            "max_frame_bytes": metacore_settings.HUB_MAX_FRAME_BYTES,
        }
        return Response({"success": True, "data": data})
