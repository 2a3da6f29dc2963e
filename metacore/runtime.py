"""The process's kernel: `get_kernel()` builds `METACORE['KERNEL_CLASS']` on first use and drops
it when `settings.METACORE` changes (Django's `setting_changed`), as DRF's `api_settings` and
Channels' layer manager do.

Only the edges call it (views, admin, commands, the consumer, task entry points, signal hookup in
`apps.py`). It names the kernel class through the setting, so a task module the kernel's
services enqueue can reach the kernel without an import cycle. The documented import path is
`metacore.kernel.get_kernel`.
"""

from typing import TYPE_CHECKING

from django.core.signals import setting_changed

from metacore.conf import metacore_settings

if TYPE_CHECKING:
    from metacore.kernel import Kernel

_kernel: "Kernel | None" = None


def get_kernel() -> "Kernel":
    global _kernel
    if _kernel is None:
        _kernel = metacore_settings.KERNEL_CLASS()
    return _kernel


def reset_kernel() -> None:
    """Drop the built services; the next `get_kernel()` builds them from the settings of then."""
    global _kernel
    _kernel = None


def _rebuild(*, setting: str, **kwargs: object) -> None:
    if setting == "METACORE":
        reset_kernel()


setting_changed.connect(_rebuild, dispatch_uid="metacore.runtime.rebuild")
