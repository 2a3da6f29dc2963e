"""The installer's errors: a bundle that cannot be opened or whose signature does not hold,
an install that failed (and was rolled back), an upgrade refused as asked, an inbound
webhook refused. Each has its own `code` (docs/api.md, Errors)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from metacore.conf import data_dir
from metacore.errors import Conflict, InvalidInput, MetacoreError


class BundleError(InvalidInput):
    """A bundle that cannot be opened; the message says which rule it broke, naming the
    bundle by its file name only (no server path: messages reach API clients)."""

    code = "invalid_bundle"

    def __init__(self, source: str | PathLike[str], message: str) -> None:
        message = _without_paths(message, source)
        super().__init__(f"bundle {Path(source).name}: {message}", errors={"bundle": [message]})


def _without_paths(message: str, source: str | PathLike[str]) -> str:
    """`message` with the data directory and the bundle's folder left out (an OSError or
    tarfile error quotes the absolute path it failed on)."""
    for folder in sorted(
        {str(data_dir()), str(Path(source).resolve().parent), str(Path(source).parent)}, key=len, reverse=True
    ):
        if folder not in ("", ".", "/"):
            message = message.replace(folder + "/", "").replace(folder, "")
    return message


class SignatureError(InvalidInput):
    """A bundle whose signature, digest or checksums do not hold (always HTTP 400)."""

    code = "invalid_signature"

    def __init__(self, message: str) -> None:
        super().__init__(f"bundle signature: {message}", errors={"bundle": [message]})


class InstallFailed(MetacoreError):
    """An install step failed for a reason other than a validation rule (database error,
    failing hook...). Everything was rolled back."""

    status = 400
    code = "install_failed"


class UpgradeRefused(Conflict):
    """The plan cannot be applied as asked (destructive steps not allowed, a failed data
    check, a version that does not move forward). Nothing was changed."""

    code = "upgrade_refused"


class WebhookRejected(MetacoreError):
    """An inbound webhook whose signature, timestamp or nonce does not hold."""

    status = 401
    code = "webhook_rejected"
