"""Lifecycle hook point: `on_install`, `on_upgrade`, `on_enable`, `on_disable`,
`on_uninstall`.

The installer calls `run_lifecycle_hook` inside its transaction, after the addon's tables
and rows exist, so a hook that fails rolls the whole operation back. Only a wasm backend
that exports the hook has anything to run; every other addon passes through untouched.
"""
LIFECYCLE_HOOKS = ("on_install", "on_upgrade", "on_enable", "on_disable", "on_uninstall")


def hook_export(manifest, hook_name: str) -> str | None:
    """The wasm export implementing `hook_name`, or None when the addon has none."""
    backend = manifest.backend
    if backend is None or backend.runtime != "wasm":
        return None
    export = manifest.hooks.get(hook_name) or hook_name
    return export if export in backend.exports else None


def run_lifecycle_hook(kernel, installation, bundle, hook_name: str):
    """Run the addon's hook export, if it has one. `bundle` is the bundle being installed or
    upgraded to, None for enable/disable/uninstall (the installed copy is at
    `installation.bundle_path`). Returns the hook's result, or None when there is no hook."""
    from metacore.manifest.model import Manifest

    manifest = bundle.manifest if bundle is not None else Manifest.model_validate(installation.manifest)
    if hook_export(manifest, hook_name) is None:
        return None
    return kernel.sandbox.run_hook(installation, manifest, hook_name)
