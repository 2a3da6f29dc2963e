"""What the management API does beyond the installer's lifecycle calls: choose the bundle
(catalog or upload), hand out the installation secret, validate settings, audit changes.
Framework-agnostic; `metacore/api/management_views.py` only translates HTTP."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from django.db import transaction

from metacore.conf import data_dir
from metacore.context import user_actor
from metacore.errors import Forbidden, InvalidInput, NotFound
from metacore.installer import catalog
from metacore.installer.secrets import issue_secret, seal_settings
from metacore.installer.setting_types import clean_settings
from metacore.models import Installation, OrganizationInstallation
from metacore.schema.registry import (
    ANY_ORGANIZATION,
    OrganizationFilter,
    bump_registry_revision,
    organization_key,
)

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from metacore.audit.pipe import AuditPipe
    from metacore.context import CallContext
    from metacore.installer.bundle import Bundle, BundlePath
    from metacore.installer.service import InstallerService, InstallResult
    from metacore.permissions.service import User
    from metacore.schema.registry import ModelRegistry

MANAGE_PERMISSION = "metacore.manage_addons"


class InstallOptions(TypedDict):
    """What an install request may carry besides the bundle."""

    settings: dict[str, Any]
    credentials: dict[str, Any]
    selected_tools: list[str]


def can_manage(user: User | None) -> bool:
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and (user.is_staff or user.has_perm(MANAGE_PERMISSION))
    )


def acting_organization(user: User, tenant: object, requested: object = None) -> str | None:
    """The organization a management call acts for: host staff act host-wide unless they
    name an organization (`requested`); anyone else acts for their own organization (None,
    host-wide, on a host without organizations) and may not name another."""
    wanted = organization_key(requested)
    if user.is_staff:
        return wanted
    own = organization_key(tenant)
    if wanted is not None and wanted != own:
        raise Forbidden(
            f"permission denied: only host staff act for another organization than their own ({own})"
        )
    return own


def viewing_organization(user: User, tenant: object, requested: object = None) -> OrganizationFilter:
    """Whose installations a listing shows: `acting_organization`, except that host staff
    naming none see every installation."""
    organization = acting_organization(user, tenant, requested)
    return ANY_ORGANIZATION if organization is None and user.is_staff else organization


def require_manager(audit: AuditPipe, user: User, action: str, addon: str = "") -> None:
    """Staff or `metacore.manage_addons`; a refusal is audited and answers 403."""
    if can_manage(user):
        return
    reason = f"permission denied: {action} needs staff status or the {MANAGE_PERMISSION} permission"
    audit.record(
        "permission.check",
        actor=user_actor(user),
        addon=addon,
        target=MANAGE_PERMISSION,
        decision="deny",
        reason=reason,
        details={"action": action},
    )
    raise Forbidden(reason)


def install_options(data: Mapping[str, Any]) -> InstallOptions:  # data: the JSON request body
    """`{settings, credentials, selected_tools}` from a request body, type-checked."""
    problems: dict[str, list[str]] = {}
    settings = data.get("settings") or {}
    credentials = data.get("credentials") or {}
    selected_tools = data.get("selected_tools") or []
    if not isinstance(settings, dict):
        problems["settings"] = ["must be an object"]
    if not isinstance(credentials, dict):
        problems["credentials"] = ["must be an object"]
    if not isinstance(selected_tools, list) or not all(isinstance(t, str) for t in selected_tools):
        problems["selected_tools"] = ["must be a list of tool ids"]
    if problems:
        raise InvalidInput("invalid install options", errors=problems)
    return {"settings": settings, "credentials": credentials, "selected_tools": selected_tools}


@contextmanager
def uploaded_bundle(upload: UploadedFile[bytes]) -> Iterator[Path]:
    """Spool an uploaded bundle to a private temporary file the installer can open."""
    spool = Path(tempfile.mkdtemp(prefix="upload-", dir=data_dir("uploads")))
    try:
        target = spool / "bundle.tar.gz"
        with target.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        yield target
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def open_checked(path: BundlePath, key: str) -> Bundle:
    """Open a bundle and make sure it is the addon the URL names."""
    from metacore.installer.bundle import open_bundle

    bundle = open_bundle(path)
    if bundle.manifest.key != key:
        raise InvalidInput(
            f"the bundle is addon {bundle.manifest.key!r}, not {key!r}",
            errors={"bundle": ["addon key mismatch"]},
        )
    return bundle


def catalog_bundle(key: str, version: str | None = None) -> Bundle:
    item = catalog.get_item(key, version)
    if not item.installable:
        raise InvalidInput(
            f"addon {key!r} {item.version} cannot be installed: {'; '.join(item.problems)}",
            errors={"bundle": list(item.problems)},
        )
    return open_checked(item.path, key)


def install(
    installer: InstallerService,
    bundle: Bundle,
    *,
    context: CallContext,
    options: InstallOptions,
    organization: str | None = None,
) -> tuple[InstallResult, str]:
    """Install (for every organization, or for `organization`), then issue that
    installation's secret (returned once, stored hashed)."""
    result = installer.install(bundle, context=context, organization=organization, **options)
    secret = issue_secret(result.organization or result.installation)
    return result, secret


def rotate_secret(
    installer: InstallerService,
    audit: AuditPipe,
    key: str,
    *,
    context: CallContext,
    organization: str | None = None,
) -> tuple[Installation, str]:
    """A new secret for the host-wide installation, or for `organization`'s own."""
    with transaction.atomic():
        installation, own = _active(installer, key, organization)
        secret = issue_secret(own or installation)
        _audit(audit, "addon.secret_rotated", key, context, organization)
    return installation, secret


def update_settings(
    installer: InstallerService,
    registry: ModelRegistry,
    audit: AuditPipe,
    key: str,
    settings: object,
    *,
    context: CallContext,
    organization: str | None = None,
) -> Installation:
    """Replace the settings of the host-wide installation, or of `organization`'s own (its
    values over the host-wide ones), checked against the manifest's `settings[]` (keys and
    types, see `setting_types`); audited with the keys, never the values."""
    if not isinstance(settings, dict):
        raise InvalidInput("settings must be a JSON object", errors={"settings": ["must be an object"]})
    with transaction.atomic():
        installation, own = _active(installer, key, organization)
        manifest = registry.installed(key).manifest
        target = own or installation
        settings = clean_settings(manifest, settings, addon=key, previous=target.settings)
        before = sorted(target.settings)
        target.settings = seal_settings(manifest, settings, previous=target.settings)
        target.save(update_fields=["settings", "updated_at"])
        bump_registry_revision()  # settings are part of the registry's read model
        _audit(
            audit,
            "addon.settings",
            key,
            context,
            organization,
            details={"keys_before": before, "keys_after": sorted(settings)},
        )
    return installation


def _audit(
    audit: AuditPipe, kind: str, key: str, context: CallContext, organization: str | None, **fields: Any
) -> None:
    audit.record(
        kind,
        actor=context.actor,
        addon=key,
        target=key,
        tenant=organization or "",
        decision="allow",
        **fields,
    )


def _active(
    installer: InstallerService, key: str, organization: str | None
) -> tuple[Installation, OrganizationInstallation | None]:
    """The installed package, locked, and the organization's own installation (locked;
    created for a host-wide addon), None when acting host-wide."""
    installation = Installation.objects.active().locked(key)
    if installation is None:
        raise NotFound(f"addon {key!r} is not installed")
    if organization is None:
        return installation, None
    return installation, installer.organization_installation(installation, organization, lock=True)
