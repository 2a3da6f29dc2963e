"""Lifecycle hook point: `on_install`, `on_upgrade`, `on_enable`, `on_disable`,
`on_uninstall`.

The installer calls `run_lifecycle_hook` inside its transaction, after the addon's tables
and rows exist, so a hook that fails rolls the whole operation back. Only a wasm backend
can have hooks; every other addon passes through untouched, without loading the sandbox.
"""
LIFECYCLE_HOOKS = ("on_install", "on_upgrade", "on_enable", "on_disable", "on_uninstall")


def run_lifecycle_hook(kernel, installation, bundle, hook_name: str):
    """Run the addon's hook, if it has one; return its result or None.

    `bundle` is the bundle being installed or upgraded to, None for enable/disable/uninstall
    (the sandbox then loads the module from `installation.bundle_path`).
    """
    from metacore.manifest.model import Manifest

    manifest = bundle.manifest if bundle is not None else Manifest.model_validate(installation.manifest)
    if manifest.backend is None or manifest.backend.runtime != "wasm":
        return None
    bundle_dir = str(bundle.root) if bundle is not None else None
    return kernel.sandbox.run_hook(installation, manifest, hook_name, bundle_dir=bundle_dir)
