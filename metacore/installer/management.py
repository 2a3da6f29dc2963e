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
from metacore.errors import Forbidden, InvalidInput, NotFound
from metacore.installer import catalog
from metacore.installer.secrets import issue_secret, seal_settings
from metacore.installer.setting_types import clean_settings
from metacore.manifest.model import Manifest
from metacore.models import Installation

if TYPE_CHECKING:
    from django.core.files.uploadedfile import UploadedFile

    from metacore.installer.bundle import Bundle, BundlePath
    from metacore.installer.service import InstallResult
    from metacore.kernel import Kernel
    from metacore.permissions.service import User

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


def require_manager(kernel: Kernel, user: User, action: str, addon: str = "") -> None:
    """Staff or `metacore.manage_addons`; a refusal is audited and answers 403."""
    if can_manage(user):
        return
    reason = f"permission denied: {action} needs staff status or the {MANAGE_PERMISSION} permission"
    kernel.audit.record(
        "permission.check",
        actor=user.get_username(),
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
    kernel: Kernel, bundle: Bundle, *, actor: User, options: InstallOptions
) -> tuple[InstallResult, str]:
    """Install, then issue the installation secret (returned once, stored hashed)."""
    result = kernel.installer.install(bundle, actor=actor, **options)
    secret = issue_secret(result.installation)
    return result, secret


def rotate_secret(kernel: Kernel, key: str, *, actor: User) -> tuple[Installation, str]:
    with transaction.atomic():
        installation = _active(kernel, key)
        secret = issue_secret(installation)
        kernel.audit.record(
            "addon.secret_rotated", actor=actor.get_username(), addon=key, target=key, decision="allow"
        )
    return installation, secret


def update_settings(kernel: Kernel, key: str, settings: object, *, actor: User) -> Installation:
    """Replace an installation's settings, checked against the manifest's `settings[]` (keys
    and types, see `setting_types`); audited with the keys, never the values."""
    if not isinstance(settings, dict):
        raise InvalidInput("settings must be a JSON object", errors={"settings": ["must be an object"]})
    with transaction.atomic():
        installation = _active(kernel, key)
        manifest = Manifest.model_validate(installation.manifest)
        settings = clean_settings(manifest, settings, addon=key, previous=installation.settings)
        before = sorted(installation.settings)
        installation.settings = seal_settings(manifest, settings, previous=installation.settings)
        installation.save(update_fields=["settings", "updated_at"])
        kernel.audit.record(
            "addon.settings",
            actor=actor.get_username(),
            addon=key,
            target=key,
            decision="allow",
            details={"keys_before": before, "keys_after": sorted(settings)},
        )
    return installation


def _active(kernel: Kernel, key: str) -> Installation:
    installation = Installation.objects.select_for_update().filter(key=key).first()
    if installation is None or installation.state == Installation.State.UNINSTALLED:
        raise NotFound(f"addon {key!r} is not installed")
    return installation
