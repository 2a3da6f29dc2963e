"""The Kernel: one object holding every service, built once from settings.

A host replaces a part by subclassing and pointing `METACORE['KERNEL_CLASS']` at it, or by
the per-part settings (sinks, tenant resolver, channel layer). DRF views, consumers and
management commands get services from `get_kernel()`; services never import DRF, Channels
or the CLI.
"""

from functools import cached_property

from metacore.conf import metacore_settings


class Kernel:
    @cached_property
    def registry(self):
        """Runtime Django models of installed addons (schema/registry.py)."""
        from metacore.schema.registry import ModelRegistry

        return ModelRegistry()

    @cached_property
    def installer(self):
        from metacore.installer.service import InstallerService

        return InstallerService(self)

    @cached_property
    def store(self):
        from metacore.store.service import StoreService

        return StoreService(self)

    @cached_property
    def shaper(self):
        from metacore.store.shaping import RowShaper

        return RowShaper(self.store, self.permissions)

    @cached_property
    def transfer(self):
        from metacore.store.transfer import TransferService

        return TransferService(self.store, self.audit)

    @cached_property
    def permissions(self):
        from metacore.permissions.service import PermissionService

        return PermissionService(self)

    @cached_property
    def metadata(self):
        """UI metadata, options and search over addon models (metadata/service.py)."""
        from metacore.metadata.service import MetadataService

        return MetadataService(self)

    @cached_property
    def enforcer(self):
        from metacore.security.enforcer import Enforcer

        return Enforcer(self)

    @cached_property
    def audit(self):
        from metacore.audit.pipe import AuditPipe

        return AuditPipe.from_settings()

    @cached_property
    def sandbox(self):
        from metacore.sandbox.service import SandboxService

        return SandboxService(self)

    @cached_property
    def actions(self):
        """Row action triggers: wasm, noop, webhook (actions/dispatcher.py)."""
        from metacore.actions.dispatcher import ActionDispatcher

        return ActionDispatcher(self)

    @cached_property
    def deliveries(self):
        """Outbound webhook deliveries on events (integrations/deliveries.py)."""
        from metacore.integrations.deliveries import DeliveryService

        return DeliveryService(self)

    @cached_property
    def schedules(self):
        """Addon cron schedules (integrations/schedules.py)."""
        from metacore.integrations.schedules import ScheduleService

        return ScheduleService(self)

    @cached_property
    def tools(self):
        """Tool registry from manifests' tools[] and its dispatcher (integrations/tools.py)."""
        from metacore.integrations.tools import ToolService

        return ToolService(self)

    @cached_property
    def inbound(self):
        """Inbound webhooks declared by manifests (integrations/inbound.py)."""
        from metacore.integrations.inbound import InboundService

        return InboundService(self)

    @cached_property
    def hub(self):
        from metacore.hub.publisher import HubPublisher

        return HubPublisher(self)


_kernel = None


def get_kernel() -> Kernel:
    global _kernel
    if _kernel is None:
        _kernel = metacore_settings.KERNEL_CLASS()
    return _kernel


def reset_kernel():
    """Drop the built services (tests, or after changing settings at runtime)."""
    global _kernel
    _kernel = None
