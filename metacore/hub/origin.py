"""WebSocket Origin check: a page of another site may not open a socket with the visitor's
session cookie (cross-site WebSocket hijacking).

`METACORE["HUB_ALLOWED_ORIGINS"]`:
- `None` (default): the Origin's host must be the request's own `Host` (same origin), or
  match a pattern of `ALLOWED_HOSTS` other than `"*"`. Stricter than Channels'
  `AllowedHostsOriginValidator`, which lets every origin in when `ALLOWED_HOSTS = ["*"]`.
- a list of Channels `OriginValidator` patterns (`"https://app.example.com"`,
  `".example.com"`, `"*"` for any origin).

A handshake without an Origin header is let through: browsers always send one on WebSocket
handshakes, so its absence means a non-browser client presenting its own credentials (the
official Node client, scripts), which no other site can make a visitor's browser do.
A refused socket is accepted and closed with 4403 and the reason, like the hub's other
refusals, before anything is authenticated or sent.
"""

from urllib.parse import urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from metacore.conf import metacore_settings


class HubOriginValidator(OriginValidator):
    def __init__(self, application):
        super().__init__(application, allowed_origins=())

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin")
        if origin is None or self._allowed(urlparse(origin), _header(scope, b"host") or ""):
            return await self.application(scope, receive, send)
        return await _refuse(receive, send, f"origin {origin[:200]!r} is not allowed")

    def _allowed(self, origin, host):
        patterns = metacore_settings.HUB_ALLOWED_ORIGINS
        if patterns is not None:
            return any(p == "*" or self.match_allowed_origin(origin, p) for p in patterns)
        if origin.hostname is None:
            return False
        if origin.netloc.lower() == host.lower():
            return True
        hosts = [h for h in settings.ALLOWED_HOSTS if h != "*"]
        origin_host, _ = split_domain_port(origin.netloc)
        return bool(hosts) and validate_host(origin_host, hosts)


def _header(scope, name):
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(receive, send, reason):
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4403, "reason": reason})
