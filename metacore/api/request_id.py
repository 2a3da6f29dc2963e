"""`X-Request-ID`: read from the request (or made), used by the store's audit records and
echoed on every response, so a client can quote it and an operator find its audit rows.

An incoming id that is not 1..64 characters of letters, digits, `.`, `_`, `-` is replaced
with a fresh one (`metacore.context.request_id_of`, which `CallContext.from_request` uses)."""

from metacore.context import request_id_of

HEADER = "X-Request-ID"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_of(request)
        response = self.get_response(request)
        response[HEADER] = rid
        return response
