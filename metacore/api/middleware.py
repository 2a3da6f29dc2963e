"""One JSON error contract for everything under the API prefix, not only inside DRF views.

DRF views already answer errors as envelopes (`metacore.api.errors`). What happens around
them does not go through DRF: an unknown `/api/...` route (Django's HTML 404), a body over
`DATA_UPLOAD_MAX_MEMORY_SIZE` read by Django or a middleware (HTML 400), an exception no
handler knows (Django's 500 page, the full debug page under DEBUG). This middleware turns
each into `{"success": false, "message", "code", "errors"}`:

- a request whose Content-Length exceeds the limit answers 413 before anything reads it;
- an uncaught exception answers 500 with a request id and nothing else (no type, no text,
  no path): the traceback goes to the `metacore.api` log and an `api.error` audit event,
  both under that id;
- any other non-JSON error response under the prefix is replaced by the envelope of its
  status.

Paths outside the API prefix (where `metacore.urls` is mounted) are left alone. Add it near
the top of `MIDDLEWARE` (docs/embedding.md); `manage.py check` warns when it is missing.
"""

import logging
from weakref import WeakKeyDictionary

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.urls import NoReverseMatch, URLResolver, get_resolver, get_script_prefix, get_urlconf, reverse

from metacore.api.errors import error_body
from metacore.context import request_id_of

log = logging.getLogger("metacore.api")

MESSAGES = {
    400: "bad request",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    413: "the request body is too large",
    414: "the request URL is too long",
    500: "internal server error",
}


#: api_prefix() per URL resolver (Django's resolvers are cached per URLconf and dropped when
#: the URLconf changes) and script prefix: reversing a URL on every request cost more than
#: the rest of this middleware.
_prefixes: WeakKeyDictionary[URLResolver, dict[str, str]] = WeakKeyDictionary()


def api_prefix() -> str:
    """Where `metacore.urls` is mounted (`/api/` in the sandbox project)."""
    by_script = _prefixes.setdefault(get_resolver(get_urlconf()), {})
    script = get_script_prefix()
    prefix = by_script.get(script)
    if prefix is None:
        try:
            prefix = reverse("metacore-dynamic-list", kwargs={"model": "m"})[: -len("dynamic/m")]
        except NoReverseMatch:
            prefix = "/api/"
        by_script[script] = prefix
    return prefix


def envelope(status, message=None, errors=None, code=None, **extra):
    body = error_body(message or MESSAGES.get(status, "request failed"), status, errors, code)
    return JsonResponse({**body, **extra}, status=status)


class ApiErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(api_prefix()):
            return self.get_response(request)
        too_large = self._oversized(request)
        if too_large is not None:
            return too_large
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            replacement = envelope(response.status_code, errors={})
            for header in ("Allow", "Retry-After", "WWW-Authenticate", "X-Request-ID"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    @staticmethod
    def _oversized(request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is None or request.content_type == "multipart/form-data":  # uploads are not in the limit
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return envelope(400, "the Content-Length header is not a number", code="parse_error")
        if length > limit:
            return envelope(413, f"the request body is larger than {limit} bytes")
        return None

    def process_exception(self, request, exception):
        if not request.path.startswith(api_prefix()):
            return None
        if isinstance(exception, Http404):
            return envelope(404)
        if isinstance(exception, PermissionDenied):
            return envelope(403)
        if isinstance(exception, RequestDataTooBig):
            return envelope(413)
        if isinstance(exception, SuspiciousOperation):
            return envelope(400)
        rid = request_id_of(request)
        log.error("request %s: %s %s failed", rid, request.method, request.path, exc_info=exception)
        _audit_failure(request, rid, exception)
        response = envelope(500, f"internal server error (request {rid})", request_id=rid)
        response["X-Request-ID"] = rid
        return response


def _audit_failure(request, rid, exception):
    from metacore.kernel import get_kernel

    user = getattr(request, "user", None)
    actor = str(user.pk) if getattr(user, "pk", None) is not None else None
    try:
        get_kernel().audit.record(
            "api.error",
            actor=actor,
            target=request.path[:200],
            decision="error",
            request_id=rid,
            details={"method": request.method, "exception": type(exception).__name__},
        )
    except Exception:  # the answer must still be the envelope; the log above has the cause
        log.exception("request %s: recording the api.error audit event failed", rid)
