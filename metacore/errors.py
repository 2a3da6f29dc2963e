"""Typed errors raised by services; the API layer turns them into envelopes with `status`."""


class MetacoreError(Exception):
    status = 400

    def __init__(self, message, *, errors=None, status=None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        if status is not None:
            self.status = status


class ValidationError(MetacoreError):
    status = 400


class NotAuthenticated(MetacoreError):
    status = 401


class PermissionDenied(MetacoreError):
    status = 403


class CapabilityDenied(PermissionDenied):
    """An addon operation its manifest's capabilities do not grant (enforce mode)."""


class NotFound(MetacoreError):
    status = 404


class Conflict(MetacoreError):
    status = 409
