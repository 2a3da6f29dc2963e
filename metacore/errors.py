"""Typed errors raised by services; the API layer turns them into envelopes with `status`
and the machine `code` (docs/api.md lists the codes)."""

from collections.abc import Mapping, Sequence

#: The code of an error that names none, by HTTP status (DRF's `default_code` spelling).
STATUS_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
    500: "server_error",
    501: "not_implemented",
    503: "unavailable",
    504: "timeout",
}


def code_for_status(status: int) -> str:
    return STATUS_CODES.get(status, "client_error" if status < 500 else "server_error")


class MetacoreError(Exception):
    """The base of every error a metacore service raises: a `message` for people, `errors` by
    field, an HTTP `status` and a stable machine `code` (DRF's `default_code` spelling).

    Every subclass names its own `code`, unique across metacore (a test holds it so), and
    each package keeps its errors in its `errors.py`. An instance may narrow the code
    (`SQLRefused(..., code="forbidden")` for the sandbox's ABI answers)."""

    status = 400
    code: str | None = None  # None (the base class only): the status's code (STATUS_CODES)

    def __init__(
        self,
        message: str,
        *,
        errors: Mapping[str, Sequence[str]] | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors: Mapping[str, Sequence[str]] = errors or {}  # messages by field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if self.code is None:
            self.code = code_for_status(self.status)


class InvalidInput(MetacoreError):
    """Input that breaks a rule; `errors` names the fields (not Django's or DRF's
    `ValidationError`, whose names it would shadow)."""

    status = 400
    code = "invalid"


class NotAuthenticated(MetacoreError):
    status = 401
    code = "not_authenticated"


class Forbidden(MetacoreError):
    """The caller may not do this (not Django's `PermissionDenied`, whose name it would shadow)."""

    status = 403
    code = "permission_denied"


class CapabilityDenied(Forbidden):
    """An addon operation its manifest's capabilities do not grant (enforce mode)."""

    code = "capability_denied"


class NotFound(MetacoreError):
    status = 404
    code = "not_found"


class Conflict(MetacoreError):
    status = 409
    code = "conflict"
