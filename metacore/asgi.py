"""The ASGI application a host serves with Daphne: HTTP through Django, WebSocket through
metacore's hub consumer (origin checked by `metacore.hub.origin`, then session or token
authentication)."""

import django


def get_asgi_application():
    django.setup(set_prefix=False)
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application as django_asgi

    http = django_asgi()
    from metacore.hub.auth import HubAuthStack
    from metacore.hub.daphne_compat import patch_daphne
    from metacore.hub.origin import HubOriginValidator
    from metacore.hub.routing import websocket_urlpatterns

    patch_daphne()
    websocket = HubOriginValidator(HubAuthStack(URLRouter(websocket_urlpatterns)))
    return ProtocolTypeRouter({"http": http, "websocket": websocket})
