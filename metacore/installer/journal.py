"""The install journal's one writer: what the lifecycle operations (and the organization
copies they provision) record in `InstallJournal`, each field cut to its column."""

from collections.abc import Mapping

from metacore.models import InstallJournal


def write_journal(
    using: str,
    key: str,
    operation: str,
    from_version: str,
    to_version: str,
    message: str,
    details: Mapping[str, object],
    actor: str,
    *,
    ok: bool = True,
    organization: str | None = None,
) -> None:
    InstallJournal.objects.using(using).create(
        addon_key=key[:64],
        organization=organization or "",
        operation=operation,
        from_version=from_version[:64],
        to_version=to_version[:64],
        ok=ok,
        message=message,
        details=details,
        actor=actor[:150],
    )
