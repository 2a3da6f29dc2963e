"""Lifecycle hook point: `on_install`, `on_upgrade`, `on_enable`, `on_disable`,
`on_uninstall`.

The installer calls `run_lifecycle_hook` inside its transaction, after the addon's tables
and rows exist, so a hook that fails rolls the whole operation back. Only a wasm backend
can have hooks; every other addon passes through untouched, without loading the sandbox.

A manifest may imply a wasm backend its bundle does not ship (v3 manifests derive one from
their wasm action handlers; the SDK's sample manifests come without the compiled module).
Such an addon installs with its tables and data API; there is no module to run hooks from
(`missing_backend_module` names it, and the installer reports it as a warning).
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from metacore.context import CallContext
from metacore.schema.registry import organization_key

if TYPE_CHECKING:
    from metacore.installer.bundle import Bundle
    from metacore.manifest.model import Manifest
    from metacore.models import Installation
    from metacore.sandbox.service import SandboxService


def run_lifecycle_hook(
    sandbox: Callable[[], "SandboxService"],
    installation: "Installation",
    bundle: "Bundle | None",
    hook_name: str,
    context: CallContext,
    *,
    organization: str | None = None,
) -> object:
    """Run the addon's hook, if it has one; return its result or None.

    `sandbox` provides the sandbox, asked for only when there is a hook to run. `bundle` is
    the bundle being installed or upgraded to, None for enable/disable/uninstall (the sandbox
    then loads the module from `installation.bundle_path`). The hook runs for the operation's
    `context` (its actor), with `organization` as its tenant (None for a host-wide operation).
    """
    from metacore.manifest.model import Manifest

    manifest = bundle.manifest if bundle is not None else Manifest.model_validate(installation.manifest)
    if manifest.backend is None or manifest.backend.runtime != "wasm":
        return None
    bundle_dir = Path(bundle.root) if bundle is not None else Path(installation.bundle_path or ".")
    if missing_backend_module(manifest, bundle_dir):
        return None
    settings = dict(installation.settings or {})
    if organization:
        own = installation.organizations.filter(organization=organization_key(organization)).first()
        settings.update(own.settings if own is not None else {})
    return sandbox().run_hook(
        manifest,
        hook_name,
        bundle_dir=str(bundle_dir),
        settings=settings,
        context=context.replace(tenant=organization),
    )


def missing_backend_module(manifest: "Manifest", bundle_dir: str | Path) -> str | None:
    """The wasm entry path the manifest names but `bundle_dir` lacks, else None."""
    backend = manifest.backend
    if backend is None or backend.runtime != "wasm" or not backend.entry:
        return None
    entry = backend.entry.lstrip("/")
    return None if (Path(bundle_dir) / entry).is_file() else entry
