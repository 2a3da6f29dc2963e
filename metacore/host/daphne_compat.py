"""Daphne drops the `reason` of an ASGI `websocket.close` (django/daphne#374): clients would
see the hub's 4401/4403 codes without saying why. When Daphne is the server, forward the
reason to autobahn's `sendClose`, which supports it; any other server is left alone."""
import logging

log = logging.getLogger("metacore.hub")


def forward_close_reason():
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(WebSocketProtocol.handle_reply, "_metacore_close_reason", False):
        return
    original = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        reason = message.get("reason") if message.get("type") == "websocket.close" else None
        if reason and self.state == self.STATE_OPEN:
            code = message.get("code") or 1000
            # A close reason is at most 123 bytes of UTF-8 (RFC 6455 5.5).
            self.sendClose(code=code, reason=reason.encode()[:123].decode(errors="ignore"))
            return
        return original(self, message)

    handle_reply._metacore_close_reason = True
    WebSocketProtocol.handle_reply = handle_reply
