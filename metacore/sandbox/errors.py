"""Typed sandbox errors: what went wrong inside (or at the edge of) a guest, never a host crash.

Each error carries a stable `code` (used in action envelopes and audit records) and a
message naming the addon and export. They are MetacoreErrors, so the API layer turns them
into 4xx envelopes; the process keeps serving.
"""

from metacore.errors import InvalidInput, MetacoreError


class SandboxError(MetacoreError):
    """A guest failed; status 422 because the request was fine but the addon code was not."""

    status = 422
    code = "sandbox_error"


class NoBackend(SandboxError):
    status = 404
    code = "no_backend"


class ExportNotAllowed(SandboxError):
    """The export is not listed in manifest.backend.exports (or missing from the module)."""

    status = 404
    code = "export_not_allowed"


class ModuleRejected(SandboxError):
    """The module cannot run here: invalid wasm, a forbidden import, a missing ABI export."""

    status = 400
    code = "module_rejected"


class Trap(SandboxError):
    """The guest trapped (unreachable, out-of-bounds access, division by zero, ...)."""

    code = "trap"


class StackOverflow(Trap):
    code = "stack_overflow"


class Timeout(SandboxError):
    """Wall time over timeout_ms (epoch interruption)."""

    status = 504
    code = "timeout"


class OutOfFuel(SandboxError):
    code = "out_of_fuel"


class OutOfMemory(SandboxError):
    """The guest needed more linear memory than memory_limit_mb allows."""

    code = "out_of_memory"


class BadPointer(SandboxError):
    """The guest handed the host a pointer/length outside its linear memory."""

    code = "bad_pointer"


class BadResult(SandboxError):
    """The guest's result is malformed: bad packed value, too large, not JSON."""

    code = "bad_result"


class GuestExit(SandboxError):
    """The guest called WASI proc_exit with a non-zero status."""

    code = "guest_exit"


class HostFailure(SandboxError):
    """A host import failed on the host's side (a bug or an outage), stopping the guest."""

    code = "host_error"


class SQLRefused(InvalidInput):
    """Addon SQL outside what the database imports allow (sandbox/sql.py). The instance's
    code says why, in the host ABI's words: `invalid_sql` (the class's), `forbidden`,
    `arg_decode`, `no_active_org`."""

    code = "invalid_sql"

    def __init__(self, message: str, code: str = "invalid_sql") -> None:
        super().__init__(message, code=code)
