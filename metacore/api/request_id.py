"""`X-Request-ID`: read from the request (or made), used by the store's audit records and
echoed on every response, so a client can quote it and an operator find its audit rows.

An incoming id that is not 1..64 characters of letters, digits, `.`, `_`, `-` is replaced
with a fresh one (it goes into a response header and the audit trail)."""

import re
import uuid

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(request) -> str:
    """The request's id: the caller's when valid, else a fresh one, kept on the request so
    every later reader (audit, error envelope, this middleware) sees the same."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    if not _VALID.fullmatch(given):
        given = request.META["HTTP_X_REQUEST_ID"] = uuid.uuid4().hex
    return given


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id(request)
        response = self.get_response(request)
        response[HEADER] = rid
        return response
