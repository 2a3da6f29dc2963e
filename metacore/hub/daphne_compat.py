"""Daphne shortcomings the hub's close codes and the API's error contract depend on, fixed
when Daphne is the server (any other ASGI server is left alone):

- Daphne closes sockets through autobahn's public `sendClose`, which drops the ASGI close
  `reason` (django/daphne#374) and refuses the RFC 6455 codes a server legitimately sends
  (1001 going away, 1009 too big, 1013 try again later): clients would get no reason, or no
  close frame at all. The close frame the application asked for is sent instead.
- On SIGTERM, `Server.kill_all_applications` raises KeyError for a connection that has no
  application yet (a TCP connection whose request has not arrived, or a finished HTTP one
  not yet reaped), which aborts the shutdown trigger: no application is cancelled and open
  sockets are dropped without a close frame. Such connections are skipped instead.
- Twisted drops a request whose URL is over 16 KB with no answer at all: it gets a JSON 414
  (`_answer_oversized_requests`).
"""

import asyncio
import json
import logging

log = logging.getLogger("daphne.server")

# Codes an endpoint may put on the wire (RFC 6455 7.4.1 and the IANA registry).
_SENDABLE = {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}


def patch_daphne():
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(WebSocketProtocol.handle_reply, "_metacore_patched", False):
        return
    original_reply = WebSocketProtocol.handle_reply

    def handle_reply(self, message):
        if message.get("type") == "websocket.close" and self.state == self.STATE_OPEN:
            code = message.get("code") or 1000
            if code in _SENDABLE:
                # A close reason is at most 123 bytes of UTF-8 (RFC 6455 5.5).
                reason = (message.get("reason") or "").encode()[:123].decode(errors="ignore").encode()
                self.sendCloseFrame(code=code, reasonUtf8=reason or None, isReply=False)
                return
        return original_reply(self, message)

    def kill_all_applications(self):
        from twisted.internet import defer

        wait_for = []
        for details in self.connections.values():
            instance = details.get("application_instance")
            if instance is not None and not instance.done():
                instance.cancel()
                wait_for.append(instance)
        log.info("Killed %i pending application instances", len(wait_for))
        wait_deferred = defer.Deferred.fromFuture(asyncio.gather(*wait_for))
        wait_deferred.addErrback(lambda failure: None)
        return wait_deferred

    handle_reply._metacore_patched = True
    WebSocketProtocol.handle_reply = handle_reply
    Server.kill_all_applications = kill_all_applications
    _answer_oversized_requests()


def _envelope_answer(status, reason, message, code):
    body = json.dumps({"success": False, "message": message, "code": code, "errors": {}}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _answer_oversized_requests():
    """Twisted's HTTP channel drops the connection without a word when a request line is
    over 16 KB (`lineLengthExceeded`) and answers a bare, bodiless 400 to other malformed
    heads: answer the JSON envelope instead (414 for the URL, 431 for a header line)."""
    from twisted.web.http import HTTPChannel

    def line_length_exceeded(self, line):
        first = getattr(self, "_HTTPChannel__first_line", True)
        answer = (
            _envelope_answer(
                414,
                "URI Too Long",
                f"the request line is longer than {self.MAX_LENGTH} bytes",
                "uri_too_long",
            )
            if first
            else _envelope_answer(
                431,
                "Request Header Fields Too Large",
                f"a header line is longer than {self.MAX_LENGTH} bytes",
                "headers_too_large",
            )
        )
        self.transport.write(answer)
        self.loseConnection()

    def bad_request(self):
        self.transport.write(_envelope_answer(400, "Bad Request", "malformed HTTP request", "bad_request"))
        self.loseConnection()

    HTTPChannel.lineLengthExceeded = line_length_exceeded
    HTTPChannel._respondToBadRequestAndDisconnect = bad_request
