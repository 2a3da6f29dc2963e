"""metacore: a Django reusable app that hosts Metacore addons."""

__version__ = "0.1.0"
# The upstream kernel contract version this port speaks (manifests' `kernel` ranges check it).
KERNEL_VERSION = "3.0.0"
