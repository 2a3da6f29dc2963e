"""The Kernel: one object holding every service, built once from settings.

A host replaces a part by subclassing and pointing `METACORE['KERNEL_CLASS']` at it, or by
the per-part settings (sinks, tenant resolver, channel layer). DRF views, consumers and
management commands get services from `get_kernel()`; services never import DRF, Channels
or the CLI.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from metacore.runtime import get_kernel, reset_kernel

__all__ = ["Kernel", "get_kernel", "reset_kernel"]

if TYPE_CHECKING:
    from metacore.actions.dispatcher import ActionDispatcher
    from metacore.audit.pipe import AuditPipe
    from metacore.hub.publisher import HubPublisher
    from metacore.installer.service import InstallerService
    from metacore.installer.tenant_schemas import TenantSchemaService
    from metacore.integrations.deliveries import DeliveryService
    from metacore.integrations.inbound import InboundService
    from metacore.integrations.schedules import ScheduleService
    from metacore.integrations.tools import ToolService
    from metacore.metadata.service import MetadataService
    from metacore.permissions.service import PermissionService
    from metacore.sandbox.service import SandboxService
    from metacore.schema.registry import ModelRegistry
    from metacore.security.enforcer import Enforcer
    from metacore.security.ssrf import Egress
    from metacore.store.service import StoreService
    from metacore.store.shaping import RowShaper
    from metacore.store.transfer import TransferService


class Kernel:
    @cached_property
    def registry(self) -> ModelRegistry:
        """Runtime Django models of installed addons (schema/registry.py)."""
        from metacore.schema.registry import ModelRegistry

        return ModelRegistry()

    @cached_property
    def installer(self) -> InstallerService:
        from metacore.installer.service import InstallerService

        return InstallerService(self)

    @cached_property
    def tenant_schemas(self) -> TenantSchemaService:
        """Organization copies of schema-per-tenant addons (installer/tenant_schemas.py)."""
        from metacore.installer.tenant_schemas import TenantSchemaService

        return TenantSchemaService(self)

    @cached_property
    def store(self) -> StoreService:
        from metacore.store.service import StoreService

        return StoreService(self)

    @cached_property
    def shaper(self) -> RowShaper:
        from metacore.store.shaping import RowShaper

        return RowShaper(self.store, self.permissions)

    @cached_property
    def transfer(self) -> TransferService:
        from metacore.store.transfer import TransferService

        return TransferService(self.store, self.audit)

    @cached_property
    def permissions(self) -> PermissionService:
        from metacore.permissions.service import PermissionService

        return PermissionService(self)

    @cached_property
    def metadata(self) -> MetadataService:
        """UI metadata, options and search over addon models (metadata/service.py)."""
        from metacore.metadata.service import MetadataService

        return MetadataService(self)

    @cached_property
    def enforcer(self) -> Enforcer:
        from metacore.security.enforcer import Enforcer

        return Enforcer(self)

    @cached_property
    def egress(self) -> Egress:
        """Addons' outbound HTTP: capability-checked, SSRF-guarded, blocks audited (security/ssrf.py)."""
        from metacore.security.ssrf import Egress

        return Egress(self.enforcer, self.audit)

    @cached_property
    def audit(self) -> AuditPipe:
        from metacore.audit.pipe import AuditPipe

        return AuditPipe.from_settings()

    @cached_property
    def sandbox(self) -> SandboxService:
        from metacore.sandbox.service import SandboxService

        return SandboxService(self)

    @cached_property
    def actions(self) -> ActionDispatcher:
        """Row action triggers: wasm, noop, webhook (actions/dispatcher.py)."""
        from metacore.actions.dispatcher import ActionDispatcher

        return ActionDispatcher(self)

    @cached_property
    def deliveries(self) -> DeliveryService:
        """Outbound webhook deliveries on events (integrations/deliveries.py)."""
        from metacore.integrations.deliveries import DeliveryService

        return DeliveryService(self)

    @cached_property
    def schedules(self) -> ScheduleService:
        """Addon cron schedules (integrations/schedules.py)."""
        from metacore.integrations.schedules import ScheduleService

        return ScheduleService(self)

    @cached_property
    def tools(self) -> ToolService:
        """Tool registry from manifests' tools[] and its dispatcher (integrations/tools.py)."""
        from metacore.integrations.tools import ToolService

        return ToolService(self)

    @cached_property
    def inbound(self) -> InboundService:
        """Inbound webhooks declared by manifests (integrations/inbound.py)."""
        from metacore.integrations.inbound import InboundService

        return InboundService(self)

    @cached_property
    def hub(self) -> HubPublisher:
        from metacore.hub.publisher import HubPublisher

        return HubPublisher(self)
