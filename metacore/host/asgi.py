"""The ASGI application a host serves with Daphne: HTTP through Django, WebSocket through
metacore's hub consumer (session or token authentication, origin checked against
ALLOWED_HOSTS)."""
import django


def get_asgi_application():
    django.setup(set_prefix=False)
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator
    from django.core.asgi import get_asgi_application as django_asgi

    http = django_asgi()
    from metacore.host.daphne_compat import patch_daphne
    from metacore.hub.auth import HubAuthStack
    from metacore.hub.routing import websocket_urlpatterns

    patch_daphne()
    websocket = AllowedHostsOriginValidator(HubAuthStack(URLRouter(websocket_urlpatterns)))
    return ProtocolTypeRouter({"http": http, "websocket": websocket})
