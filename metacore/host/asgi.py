"""The ASGI application a host serves with Daphne: HTTP through Django, WebSocket through
metacore's hub consumer."""
import django


def get_asgi_application():
    django.setup(set_prefix=False)
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application as django_asgi

    http = django_asgi()
    from metacore.hub.routing import websocket_urlpatterns

    return ProtocolTypeRouter({"http": http, "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))})
