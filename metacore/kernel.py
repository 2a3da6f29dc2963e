"""The Kernel: builds every service once from settings and hands each its collaborators.

It only wires: each cached property constructs one service from the others it needs (the
service's constructor names them). A host replaces a part by subclassing and overriding that
one property, then pointing `METACORE['KERNEL_CLASS']` at the subclass, or by the per-part
settings (sinks, tenant resolver, channel layer); every service that uses the part gets the
replacement. DRF views, consumers and management commands get services from `get_kernel()`;
services never import DRF, Channels or the CLI, nor reach for the kernel.
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
    from metacore.sandbox.imports import ImportServices
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
    def audit(self) -> AuditPipe:
        """The audit trail's pipe and its sinks, from `METACORE['AUDIT_SINKS']` (audit/pipe.py)."""
        from metacore.audit.pipe import AuditPipe

        return AuditPipe.from_settings()

    @cached_property
    def installer(self) -> InstallerService:
        """Install, upgrade, uninstall, enable, disable (installer/service.py)."""
        from metacore.installer.service import InstallerService

        return InstallerService(self.tenant_schemas, lambda: self.sandbox, self.audit)

    @cached_property
    def tenant_schemas(self) -> TenantSchemaService:
        """Organization copies of schema-per-tenant addons (installer/tenant_schemas.py)."""
        from metacore.installer.tenant_schemas import TenantSchemaService

        return TenantSchemaService(self.registry, self.audit)

    @cached_property
    def store(self) -> StoreService:
        """CRUD over addon models, permission-checked and tenant-scoped (store/service.py)."""
        from metacore.store.service import StoreService

        return StoreService(self.registry, self.tenant_schemas, self.permissions, self.audit)

    @cached_property
    def shaper(self) -> RowShaper:
        """Field selection and relation expansion of the rows the store answers (store/shaping.py)."""
        from metacore.store.shaping import RowShaper

        return RowShaper(self.store, self.permissions)

    @cached_property
    def transfer(self) -> TransferService:
        """Import and export of addon rows (store/transfer.py)."""
        from metacore.store.transfer import TransferService

        return TransferService(self.store, self.audit)

    @cached_property
    def permissions(self) -> PermissionService:
        """Who may read, create, update, delete an addon model (permissions/service.py)."""
        from metacore.permissions.service import PermissionService

        return PermissionService(self.registry, self.audit)

    @cached_property
    def metadata(self) -> MetadataService:
        """UI metadata, options and search over addon models (metadata/service.py)."""
        from metacore.metadata.service import MetadataService

        return MetadataService(self.registry, self.permissions, self.store)

    @cached_property
    def enforcer(self) -> Enforcer:
        """Addons' capability checks, enforce or shadow mode (security/enforcer.py)."""
        from metacore.security.enforcer import Enforcer

        return Enforcer(self.registry, self.audit)

    @cached_property
    def egress(self) -> Egress:
        """Addons' outbound HTTP: capability-checked, SSRF-guarded, blocks audited (security/ssrf.py)."""
        from metacore.security.ssrf import Egress

        return Egress(self.enforcer, self.audit)

    @cached_property
    def sandbox(self) -> SandboxService:
        """Addons' wasm exports, hooks and row actions under their limits (sandbox/service.py)."""
        from metacore.sandbox.service import SandboxService

        return SandboxService(self.sandbox_imports, self.store, self.permissions, self.actions)

    @cached_property
    def sandbox_imports(self) -> ImportServices:
        """What the guest's host imports act through: this kernel's parts (sandbox/imports.py)."""
        from metacore.sandbox.imports import ImportServices

        return ImportServices(
            enforcer=self.enforcer,
            egress=self.egress,
            audit=self.audit,
            hub=self.hub,
            tenant_schemas=self.tenant_schemas,
            registry=self.registry,
        )

    @cached_property
    def actions(self) -> ActionDispatcher:
        """Row action triggers: wasm, noop, webhook (actions/dispatcher.py)."""
        from metacore.actions.dispatcher import ActionDispatcher

        return ActionDispatcher(lambda: self.sandbox, self.egress)

    @cached_property
    def deliveries(self) -> DeliveryService:
        """Outbound webhook deliveries on events (integrations/deliveries.py)."""
        from metacore.integrations.deliveries import DeliveryService

        return DeliveryService(self.registry, self.enforcer, self.egress, self.audit)

    @cached_property
    def schedules(self) -> ScheduleService:
        """Addon cron schedules (integrations/schedules.py)."""
        from metacore.integrations.schedules import ScheduleService

        return ScheduleService(self.registry, self.sandbox, self.audit)

    @cached_property
    def tools(self) -> ToolService:
        """Tool registry from manifests' tools[] and its dispatcher (integrations/tools.py)."""
        from metacore.integrations.tools import ToolService

        return ToolService(self.registry, self.sandbox, self.egress, self.audit)

    @cached_property
    def inbound(self) -> InboundService:
        """Inbound webhooks declared by manifests (integrations/inbound.py)."""
        from metacore.integrations.inbound import InboundService

        return InboundService(self.registry, self.sandbox, self.enforcer)

    @cached_property
    def hub(self) -> HubPublisher:
        """Frames to WebSocket clients through the channel layer (hub/publisher.py)."""
        from metacore.hub.publisher import HubPublisher

        return HubPublisher(self.registry)
