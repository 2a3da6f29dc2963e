"""The ASGI application a host serves with Daphne: HTTP through Django, WebSocket through
metacore's hub consumer (origin checked by `metacore.hub.origin`, then session or token
authentication)."""

import django


def get_asgi_application():
    django.setup(set_prefix=False)
    _close_connections_per_request()
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


def _close_connections_per_request():
    """Under ASGI each request's sync code may run on a new thread, and a persistent connection
    stays with its thread: with `CONN_MAX_AGE` > 0 a busy Daphne exhausts the database's
    connection slots. Django's advice is to disable persistent connections under ASGI, so the
    settings module that gives the WSGI workers persistent connections serves the hub with
    one connection per request."""
    from django.db import connections

    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = 0
