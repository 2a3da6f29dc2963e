"""Error envelopes shared by every metacore API view.

Services raise `metacore.errors.MetacoreError`s; DRF raises its own exceptions (auth, parse,
validation, method). Both leave the API as
`{"success": false, "message": ..., "code": ..., "errors": {...}}` with the right status and
a stable machine `code` (docs/api.md). Views get this by inheriting `EnvelopeErrorsMixin`
(before `APIView`), so a host's global `EXCEPTION_HANDLER` is left alone; what happens
outside a view (unknown routes, failures in middleware, uncaught exceptions) is covered by
`metacore.api.middleware.ApiErrorsMiddleware`.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from metacore.errors import MetacoreError, code_for_status


class RequestTooLarge(drf.APIException):
    status_code = 413
    default_detail = "the request body is too large"
    default_code = "request_too_large"


class KeyReused(MetacoreError):
    """An `Idempotency-Key` sent again with a different request body."""

    status = 422
    code = "idempotency_key_reused"


def error_body(message, status, errors=None, code=None) -> dict:
    return {
        "success": False,
        "message": message,
        "code": code or code_for_status(status),
        "errors": errors or {},
    }


def error_response(message, status, errors=None, headers=None, code=None):
    return Response(error_body(message, status, errors, code), status=status, headers=headers)


def _as_error_lists(detail):
    """DRF/metacore error details -> `{field: [message, ...]}` of plain strings."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    return {"non_field_errors": _flatten(detail)} if detail else {}


def _flatten(value):
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _flatten(item)]
    return [str(value)]


def _summary(errors):
    parts = [
        f"{field}: {messages[0]}" if field != "non_field_errors" else messages[0]
        for field, messages in errors.items()
        if messages
    ]
    return "invalid input: " + "; ".join(parts[:5]) if parts else "invalid input"


def envelope_exception_handler(exc, context):
    """A DRF `EXCEPTION_HANDLER`: metacore and DRF errors -> envelope; anything else -> None
    (a real bug, left to Django's 500 handling rather than hidden)."""
    if isinstance(exc, Http404):
        exc = drf.NotFound(str(exc) or "not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied(str(exc) or "permission denied")
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(str(exc))
    elif isinstance(exc, SuspiciousOperation):
        exc = drf.ParseError(str(exc))

    if isinstance(exc, MetacoreError):
        set_rollback()
        return error_response(exc.message, exc.status, _as_error_lists(exc.errors), code=exc.code)

    if isinstance(exc, drf.APIException):
        set_rollback()
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, drf.ValidationError):
            errors = _as_error_lists(exc.detail)
            return error_response(_summary(errors), exc.status_code, errors, headers, code="invalid")
        code = getattr(exc.detail, "code", None) or exc.default_code
        return error_response(str(exc.detail), exc.status_code, None, headers, code=code)
    return None


class EnvelopeErrorsMixin:
    """Mix into an APIView: envelope errors, and 401 (not DRF's 403) for a missing or bad
    credential even when the first authentication class is session auth."""

    def get_exception_handler(self):
        return envelope_exception_handler

    def get_authenticate_header(self, request):
        for authenticator in self.get_authenticators():
            header = authenticator.authenticate_header(request)
            if header:
                return header
        return 'Session realm="api"'
