"""The installer: install, uninstall, enable, disable (framework-agnostic).

Install runs in ONE `transaction.atomic()`: compatibility and capability checks -> DDL
through Django's schema editor -> bundle SQL migrations -> Installation row with the
normalised manifest snapshot -> permission rows -> `on_install` hook -> registry revision
bump -> audit -> hub event on commit. Any failure rolls all of it back, tables included
(SQLite and PostgreSQL both have transactional DDL); the failure is then journalled outside
the rolled-back transaction.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from metacore.context import CallContext
from metacore.errors import Conflict, MetacoreError, NotFound
from metacore.events import LifecycleEvent, addon_changed, publish_on_commit
from metacore.installer.bundle import Bundle, BundlePath, Migration, discard_unused, open_bundle, template_key
from metacore.installer.compat import check_kernel_compatibility
from metacore.installer.errors import InstallFailed
from metacore.installer.hooks import missing_backend_module, run_lifecycle_hook
from metacore.installer.journal import write_journal
from metacore.installer.secrets import seal_settings
from metacore.installer.setting_types import clean_settings, declared_settings
from metacore.installer.sql_migrations import MigrationOutcome, apply_migrations, check_statements
from metacore.manifest.model import Manifest, Model
from metacore.models import (
    AppliedMigration,
    Installation,
    OrganizationInstallation,
    RegistryState,
)
from metacore.permissions.sync import create_addon_permissions, drop_addon_permissions
from metacore.schema import ddl
from metacore.schema.builder import AddonModels, build_addon_models
from metacore.schema.naming import schema_name
from metacore.schema.registry import OrganizationFilter, bump_registry_revision, organization_key
from metacore.schema.roles import drop_addon_roles
from metacore.security.patterns import require_grantable
from metacore.store.rls import enable_rls
from metacore.telemetry import span

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.installer.tenant_schemas import TenantSchemaService
    from metacore.installer.upgrade import UpgradePlan, UpgradeResult
    from metacore.sandbox.service import SandboxService

log = logging.getLogger("metacore.installer")


@dataclass
class InstallResult:
    installation: Installation
    organization: OrganizationInstallation | None = None  # set when installed for one organization
    created_tables: list[str] = field(default_factory=list)
    adopted_tables: list[str] = field(default_factory=list)  # kept from an uninstall without --drop-data
    migrations: list[MigrationOutcome] = field(default_factory=list)
    permissions: list[str] = field(default_factory=list)
    registry_revision: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.installation.key

    @property
    def version(self) -> str:
        return self.installation.version


def lock_addon_key(connection: BaseDatabaseWrapper, key: str) -> None:
    """Serialise lifecycle operations on one addon key until this transaction ends. A row lock
    cannot do it for an addon that has no Installation row yet: two concurrent installs would
    both go on to CREATE SCHEMA and the loser would fail on pg_namespace's unique index.
    With the lock the loser waits, then finds the winner's row and answers Conflict.
    SQLite has one writer: a first (empty) write takes its write lock before anything is
    read, so the loser waits for the winner's commit instead of failing on a stale read."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"metacore.install:{key}"]
            )
        elif connection.vendor == "sqlite":
            table = connection.ops.quote_name(RegistryState._meta.db_table)
            cursor.execute(f"UPDATE {table} SET revision = revision WHERE 1 = 0")


def drop_addon_tables(manifest: Manifest, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the tables of `manifest` (and any its older versions left) and its schema."""
    built = build_addon_models(manifest, revision=0, vendor=connections[using].vendor)
    on_disk = ddl.addon_tables(manifest.key, using)
    declared = [built.classes[spec.table] for spec in reversed(manifest.models) if spec.table in on_disk]
    with ddl.schema_editor(using) as editor:
        ddl.drop_tables(editor, declared)
        for table in set(on_disk) - {spec.table for spec in manifest.models}:  # left by older versions
            ddl.drop_table(editor, manifest.key, table)
    ddl.drop_schema(manifest.key, using)


class InstallerService:
    def __init__(
        self,
        tenant_schemas: TenantSchemaService,
        sandbox: Callable[[], SandboxService],
        audit: AuditPipe,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        """`sandbox` is a provider: only an addon with a wasm hook needs the sandbox, so the
        other lifecycles never load it (nor wasmtime)."""
        self.tenant_schemas = tenant_schemas
        self.sandbox = sandbox
        self.audit = audit
        self.using = using

    # -- install ------------------------------------------------------------------------

    def install(
        self,
        bundle: Bundle | BundlePath,
        *,
        context: CallContext | None = None,
        organization: object = None,
        settings: Mapping[str, object] | None = None,
        credentials: dict[str, Any] | None = None,
        selected_tools: Iterable[str] | None = None,
    ) -> InstallResult:
        """Install a bundle (path or opened Bundle) for every organization, or for
        `organization` only. Conflict when the addon is already installed for them; an
        organization installing a package another one has gets that package's version."""
        context = context or CallContext()
        actor_name = context.actor
        organization = organization_key(organization)
        if not isinstance(bundle, Bundle):
            source = bundle
            try:
                bundle = open_bundle(source)
            except MetacoreError as exc:
                self._journal_failure(template_key(source), "install", "", exc, actor_name, organization)
                raise
        manifest = bundle.manifest
        with (
            self._bundle_discarded_on_failure(bundle),
            self._failure_recorded(
                "install",
                manifest.key,
                manifest.version,
                actor_name,
                f"install of {manifest.key} {manifest.version} failed",
                organization,
            ),
            span("metacore.install", addon=manifest.key, version=manifest.version),
            transaction.atomic(using=self.using),
        ):
            result = self._install(bundle, context, organization, settings, credentials, selected_tools)
        log.info("installed %s %s (%d tables)", manifest.key, manifest.version, len(manifest.models))
        return result

    def _install(
        self,
        bundle: Bundle,
        context: CallContext,
        organization: str | None,
        settings: Mapping[str, object] | None,
        credentials: dict[str, Any] | None,
        selected_tools: Iterable[str] | None,
    ) -> InstallResult:
        manifest, actor = bundle.manifest, context.actor
        lock_addon_key(connections[self.using], manifest.key)
        existing = Installation.objects.using(self.using).locked(manifest.key)
        cleaned = clean_settings(manifest, settings or {}, addon=manifest.key)
        if existing is not None and existing.state != Installation.State.UNINSTALLED:
            if existing.version != manifest.version:
                raise Conflict(
                    f"addon {manifest.key} {existing.version} is installed; upgrade it to {manifest.version} instead"
                )
            return self._install_existing(existing, bundle, context, organization, cleaned)
        check_kernel_compatibility(manifest.kernel)
        require_grantable(manifest)

        self.tenant_schemas.check_not_a_copy(manifest.key)
        revision = (existing.revision + 1) if existing is not None else 1
        built = build_addon_models(manifest, revision=revision, vendor=connections[self.using].vendor)
        kept = Manifest.model_validate(existing.manifest) if existing is not None else None
        if manifest.tenant_isolation == "schema":
            # No shared tables: each organization's copy is made on its first use (tenant_schemas).
            created: list[str] = []
            adopted = self._adopt_copies(manifest, kept)
            migrations = []
            for migration in bundle.migrations():
                check_statements(migration, manifest.key)  # refused now, not at a copy's first use
                migrations.append(
                    MigrationOutcome(migration.name, "checked", "runs in each organization's copy")
                )
        else:
            with span("metacore.install.ddl", addon=manifest.key, tables=len(manifest.models)):
                created, adopted = self._create_tables(manifest, built, kept=kept)
            with span("metacore.install.sql_migrations", addon=manifest.key):
                migrations = apply_migrations(manifest, bundle.migrations(), using=self.using)

        installation = existing or Installation(key=manifest.key)
        installation.name = manifest.name
        installation.version = manifest.version
        installation.state = Installation.State.ENABLED
        installation.every_organization = organization is None
        installation.manifest = manifest.model_dump(mode="json")
        installation.capabilities = [c.model_dump(mode="json") for c in manifest.capabilities]
        host_settings = {**_setting_defaults(manifest), **(cleaned if organization is None else {})}
        installation.settings = seal_settings(manifest, host_settings)
        installation.credentials = credentials or {}
        installation.selected_tools = list(selected_tools or [])
        installation.bundle_path = str(bundle.root)
        installation.bundle_sha256 = bundle.sha256
        installation.revision = revision
        installation.save(using=self.using)
        if existing is not None:  # an uninstall kept the package; its organizations start afresh
            existing.organizations.using(self.using).all().delete()
        own = self._organization_row(installation, organization, cleaned) if organization else None
        if organization:
            self._provision_copy(installation, organization, actor, bundle.migrations())

        permissions = create_addon_permissions(manifest, self.using)
        with span("metacore.install.hook", addon=manifest.key, hook="on_install"):
            run_lifecycle_hook(
                self.sandbox, installation, bundle, "on_install", context, organization=organization
            )
        registry_revision = bump_registry_revision(self.using)
        warnings = list(manifest.warnings)
        missing = missing_backend_module(manifest, bundle.root)
        if missing:
            warnings.append(
                f"the wasm backend {missing} is not in the bundle: hooks and wasm actions cannot run"
            )
        details = {
            "version": manifest.version,
            "tables": created,
            "adopted_tables": adopted,
            "migrations": {m.name: m.status for m in migrations},
            "bundle_sha256": bundle.sha256,
            "warnings": warnings,
        }
        self.record("install", manifest.key, "", manifest.version, "installed", details, actor, organization)
        return InstallResult(
            installation, own, created, adopted, migrations, sorted(permissions), registry_revision, warnings
        )

    def _install_existing(
        self,
        installation: Installation,
        bundle: Bundle,
        context: CallContext,
        organization: str | None,
        settings: dict[str, object],
    ) -> InstallResult:
        """Install a package the host already has (same version) for more organizations:
        for one (its own installation row), or for every one (it becomes host-wide). No DDL:
        the package's tables serve every organization that has it."""
        manifest, actor = bundle.manifest, context.actor
        own = None
        if organization is None:
            if installation.every_organization:
                raise Conflict(f"addon {manifest.key} {manifest.version} is already installed")
            installation.every_organization = True
            installation.settings = seal_settings(manifest, {**_setting_defaults(manifest), **settings})
            installation.save(
                using=self.using, update_fields=["every_organization", "settings", "updated_at"]
            )
        else:
            if installation.every_organization:
                raise Conflict(
                    f"addon {manifest.key} is installed for every organization, {organization} included;"
                    " enable or configure it for the organization instead"
                )
            if installation.organizations.using(self.using).filter(organization=organization).exists():
                raise Conflict(
                    f"addon {manifest.key} {manifest.version} is already installed for organization {organization}"
                )
            own = self._organization_row(installation, organization, settings)
            self._provision_copy(installation, organization, actor)
        discard_unused(bundle)  # the package keeps the bundle it was installed from
        with span("metacore.install.hook", addon=manifest.key, hook="on_install"):
            run_lifecycle_hook(
                self.sandbox, installation, None, "on_install", context, organization=organization
            )
        registry_revision = bump_registry_revision(self.using)
        details: dict[str, object] = {
            "version": manifest.version,
            "tables": [],
            "organization": organization or "",
        }
        self.record("install", manifest.key, "", manifest.version, "installed", details, actor, organization)
        return InstallResult(
            installation, own, registry_revision=registry_revision, warnings=list(manifest.warnings)
        )

    def _provision_copy(
        self,
        installation: Installation,
        organization: str,
        actor: str,
        migrations: list[Migration] | None = None,
    ) -> None:
        """A schema-per-tenant addon installed for an organization gets that organization's
        copy of its tables now, in the install's transaction (docs/security.md)."""
        if Manifest.model_validate(installation.manifest).tenant_isolation == "schema":
            self.tenant_schemas.provision(installation.key, organization, migrations=migrations, actor=actor)

    def _organization_row(
        self, installation: Installation, organization: str, settings: Mapping[str, object]
    ) -> OrganizationInstallation:
        """The organization's own installation, its settings the defaults and `settings`."""
        manifest = Manifest.model_validate(installation.manifest)
        return OrganizationInstallation.objects.using(self.using).create(
            installation=installation,
            organization=organization,
            settings=seal_settings(manifest, {**_setting_defaults(manifest), **settings}),
        )

    @contextmanager
    def _bundle_discarded_on_failure(self, bundle: Bundle) -> Iterator[None]:
        """A refused or failed operation leaves no extracted copy behind (see discard_unused)."""
        try:
            yield
        except BaseException:
            discard_unused(bundle)
            raise

    def preflight(self, bundle: Bundle | BundlePath) -> Bundle:
        """What install checks before it touches the database: the bundle opens (signature,
        checksums, manifest), the kernel version fits, every capability is grantable."""
        bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        check_kernel_compatibility(bundle.manifest.kernel)
        require_grantable(bundle.manifest)
        return bundle

    def _create_tables(
        self, manifest: Manifest, built: AddonModels, *, kept: Manifest | None
    ) -> tuple[list[str], list[str]]:
        """Create the manifest's tables; tables kept by an uninstall without --drop-data are
        adopted when the new manifest declares them exactly as the kept one did."""
        present = set(ddl.addon_tables(manifest.key, self.using))  # one catalog query
        existing = [spec.table for spec in manifest.models if spec.table in present]
        if existing and kept is None:
            raise Conflict(
                f"addon {manifest.key}: table(s) {', '.join(existing)} already exist without an installation;"
                " drop them or restore the installation record"
            )
        changed = [
            t
            for t in existing
            if kept.model(t) is None or _schema_of(kept.model(t)) != _schema_of(manifest.model(t))  # type: ignore[union-attr, arg-type]  # existing tables without kept raised above; both manifests declare t
        ]
        if changed:
            raise Conflict(
                f"addon {manifest.key} was uninstalled at {kept.version} keeping its data, and {manifest.version}"  # type: ignore[union-attr]  # existing tables without kept raised above
                f" declares table(s) {', '.join(changed)} differently: install {kept.version} again and upgrade"  # type: ignore[union-attr]  # existing tables without kept raised above
                " (metacore_upgrade), or uninstall with --drop-data first",
                errors={"tables": changed},
            )
        to_create = [built.classes[spec.table] for spec in manifest.models if spec.table not in existing]
        ddl.ensure_schema(manifest.key, self.using)
        with ddl.schema_editor(self.using) as editor:
            ddl.create_tables(editor, to_create)
        for spec in manifest.models:
            if spec.org_scoped:  # PostgreSQL row-level security: the store's second tenant wall
                enable_rls(connections[self.using], built.classes[spec.table]._meta.db_table)
        return [spec.table for spec in manifest.models if spec.table not in existing], existing

    def _adopt_copies(self, manifest: Manifest, kept: Manifest | None) -> list[str]:
        """Organization copies kept by an uninstall without --drop-data serve again when the
        new manifest declares every table as the kept one did (as `_create_tables` adopts)."""
        copies = self.tenant_schemas.copies(manifest.key)
        if not copies:
            return []
        if (
            kept is None
            or kept.tenant_isolation != "schema"
            or [_schema_of(m) for m in kept.models] != [_schema_of(m) for m in manifest.models]
        ):
            raise Conflict(
                f"addon {manifest.key} was uninstalled keeping {len(copies)} organization copies, and"
                f" {manifest.version} declares its tables differently: install"
                f" {kept.version if kept else 'the kept version'} again and upgrade, or uninstall with --drop-data first",
                errors={"tables": [schema_name(c.space) for c in copies]},
            )
        return [schema_name(c.space) for c in copies]

    # -- upgrade ------------------------------------------------------------------------

    def plan(
        self, bundle: Bundle | BundlePath, *, force: bool = False, assign_organization: object = None
    ) -> UpgradePlan:
        """The upgrade plan from the installed version to `bundle` (path or Bundle), in words
        and SQL; nothing is changed."""
        from metacore.installer.upgrade import Upgrader

        bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        try:
            return Upgrader(self).plan(
                self.get(bundle.manifest.key), bundle, force=force, assign_organization=assign_organization
            )
        finally:
            discard_unused(bundle)  # a plan applies nothing, so it keeps no copy either

    def upgrade(
        self,
        bundle: Bundle | BundlePath,
        *,
        allow_destructive: bool = False,
        force: bool = False,
        context: CallContext | None = None,
        assign_organization: object = None,
    ) -> UpgradeResult:
        """Apply the plan in one transaction; on any failure the old schema, data and
        manifest stay, and the failure is journalled. `assign_organization` gives rows of
        tables that become organization-scoped their organization (see `Differ._scope_table`)."""
        from metacore.installer.upgrade import Upgrader

        context = context or CallContext()
        bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
        manifest = bundle.manifest
        with (
            self._bundle_discarded_on_failure(bundle),
            self._failure_recorded(
                "upgrade",
                manifest.key,
                manifest.version,
                context.actor,
                f"upgrade of {manifest.key} to {manifest.version} failed",
            ),
            span("metacore.upgrade", addon=manifest.key, version=manifest.version),
        ):
            return Upgrader(self).upgrade(
                manifest.key,
                bundle,
                allow_destructive=allow_destructive,
                force=force,
                context=context,
                assign_organization=assign_organization,
            )

    # -- uninstall ----------------------------------------------------------------------

    def uninstall(
        self,
        key: str,
        *,
        drop_data: bool = False,
        context: CallContext | None = None,
        organization: object = None,
    ) -> Installation:
        """Uninstall an addon. By default its tables, rows, permissions and migration records
        stay (state `uninstalled`) for a later reinstall; `drop_data` removes all of them and
        the installation record, in one transaction.

        With `organization`, only that organization's installation goes; the package goes
        too when it was the last organization using it (and it is not host-wide)."""
        context = context or CallContext()
        actor_name = context.actor
        organization = organization_key(organization)
        with (
            self._failure_recorded(
                "uninstall", key, "", actor_name, f"uninstall of {key} failed", organization
            ),
            span("metacore.uninstall", addon=key, drop_data=drop_data),
            transaction.atomic(using=self.using),
        ):
            installation = self.locked(key, allow_uninstalled=drop_data and organization is None)
            package_goes = True
            if organization is not None:
                package_goes = self._uninstall_organization(installation, organization, drop_data, context)
            if package_goes:
                self._uninstall_package(installation, drop_data, context, hook=organization is None)
            bump_registry_revision(self.using)
            details = {"version": installation.version, "drop_data": drop_data}
            self.record(
                "uninstall", key, installation.version, "", "uninstalled", details, actor_name, organization
            )
        return installation

    def _uninstall_organization(
        self, installation: Installation, organization: str, drop_data: bool, context: CallContext
    ) -> bool:
        """Remove one organization's installation; True when the package should go too."""
        own = installation.organizations.using(self.using).filter(organization=organization).first()
        if own is None:
            if installation.every_organization:
                raise Conflict(
                    f"addon {installation.key} is installed for every organization; disable it for"
                    f" organization {organization} instead"
                )
            raise NotFound(f"addon {installation.key!r} is not installed for organization {organization}")
        others = installation.organizations.using(self.using).exclude(pk=own.pk).exists()
        last = not others and not installation.every_organization
        per_tenant = Manifest.model_validate(installation.manifest).tenant_isolation == "schema"
        if drop_data and not last and not per_tenant:
            raise Conflict(
                f"addon {installation.key}: other organizations use its tables; uninstall without dropping data"
            )
        run_lifecycle_hook(
            self.sandbox, installation, None, "on_uninstall", context, organization=organization
        )
        own.delete()
        if drop_data and per_tenant and not last:  # its own copy goes; the others' stay
            self.tenant_schemas.drop(installation.key, organization)
        return last

    def _uninstall_package(
        self, installation: Installation, drop_data: bool, context: CallContext, *, hook: bool
    ) -> None:
        if hook and installation.state != Installation.State.UNINSTALLED:
            run_lifecycle_hook(self.sandbox, installation, None, "on_uninstall", context)
        if drop_data:
            self._drop_data(Manifest.model_validate(installation.manifest))
            installation.delete(using=self.using)
        else:
            installation.state = Installation.State.UNINSTALLED
            installation.save(using=self.using, update_fields=["state", "updated_at"])
        drop_addon_roles(installation.key, self.using)
        self.tenant_schemas.drop_roles(installation.key)

    def _drop_data(self, manifest: Manifest) -> None:
        if manifest.tenant_isolation == "schema":
            self.tenant_schemas.drop_all(manifest.key, manifest)
        else:
            drop_addon_tables(manifest, self.using)
        drop_addon_permissions(manifest.key, self.using)
        AppliedMigration.objects.using(self.using).filter(addon_key=manifest.key).delete()

    # -- enable / disable ---------------------------------------------------------------

    def enable(
        self, key: str, *, context: CallContext | None = None, organization: object = None
    ) -> Installation:
        """Serve an addon again: for everyone, or for `organization` only."""
        return self._set_state(key, Installation.State.ENABLED, "enable", "on_enable", context, organization)

    def disable(
        self, key: str, *, context: CallContext | None = None, organization: object = None
    ) -> Installation:
        """Stop serving an addon (the registry drops its models), for everyone or for
        `organization` only; data and grants stay."""
        return self._set_state(
            key, Installation.State.DISABLED, "disable", "on_disable", context, organization
        )

    def _set_state(
        self,
        key: str,
        state: Installation.State,
        operation: str,
        hook: str,
        context: CallContext | None,
        organization: object,
    ) -> Installation:
        context = context or CallContext()
        actor_name = context.actor
        organization = organization_key(organization)
        with (
            self._failure_recorded(
                operation, key, "", actor_name, f"{operation} of {key} failed", organization
            ),
            span(f"metacore.{operation}", addon=key),
            transaction.atomic(using=self.using),
        ):
            installation = self.locked(key)
            if organization is None:
                if installation.state == state:
                    return installation
                installation.state = state
                installation.save(using=self.using, update_fields=["state", "updated_at"])
            elif not self._set_organization_state(
                installation, organization, state == Installation.State.ENABLED
            ):
                return installation
            run_lifecycle_hook(self.sandbox, installation, None, hook, context, organization=organization)
            bump_registry_revision(self.using)
            details = {"version": installation.version}
            version = installation.version
            self.record(operation, key, version, version, f"{state}", details, actor_name, organization)
        return installation

    def _set_organization_state(self, installation: Installation, organization: str, enabled: bool) -> bool:
        """Enable or disable the addon for one organization; False when nothing changed. A
        host-wide addon gets the organization's own row on its first change."""
        own = self.organization_installation(installation, organization, lock=True)
        if own.enabled == enabled:
            return False
        own.enabled = enabled
        own.save(using=self.using)
        return True

    def organization_installation(
        self, installation: Installation, organization: str, *, lock: bool = False
    ) -> OrganizationInstallation:
        """The organization's own installation of the package; created (as the host-wide
        one, no values of its own) the first time an organization changes a host-wide addon.
        NotFound when the organization does not have the addon."""
        rows = installation.organizations.using(self.using)
        own = (rows.select_for_update() if lock else rows).filter(organization=organization).first()
        if own is not None:
            return own
        if not installation.every_organization:
            raise NotFound(f"addon {installation.key!r} is not installed for organization {organization}")
        return OrganizationInstallation.objects.using(self.using).create(
            installation=installation, organization=organization, settings={}
        )

    # -- queries ------------------------------------------------------------------------

    def list(self, *, include_uninstalled: bool = True) -> list[Installation]:
        rows = Installation.objects.using(self.using).all()
        if not include_uninstalled:
            rows = rows.exclude(state=Installation.State.UNINSTALLED)
        return list(rows)

    def installations_for(
        self, organization: OrganizationFilter
    ) -> builtins.list[tuple[Installation, OrganizationInstallation | None]]:
        """Installed packages the organization has (host-wide, or its own installation),
        each with the organization's own installation or None; every one for ANY_ORGANIZATION."""
        rows = Installation.objects.using(self.using).active()
        if isinstance(organization, str):
            own = {
                o.installation_id: o
                for o in OrganizationInstallation.objects.using(self.using).filter(organization=organization)
            }
            return [(row, own.get(row.pk)) for row in rows if row.every_organization or row.pk in own]
        if organization is None:
            return [(row, None) for row in rows.filter(every_organization=True)]
        return [(row, None) for row in rows]

    def get(self, key: str) -> Installation:
        installation = Installation.objects.using(self.using).filter(key=key).first()
        if installation is None:
            raise NotFound(f"addon {key!r} is not installed")
        return installation

    def locked(self, key: str, *, allow_uninstalled: bool = False) -> Installation:
        """The installation of `key`, row-locked until the transaction ends; NotFound when not installed."""
        installation = Installation.objects.using(self.using).locked(key)
        if installation is None or (
            installation.state == Installation.State.UNINSTALLED and not allow_uninstalled
        ):
            raise NotFound(f"addon {key!r} is not installed")
        return installation

    # -- journal and audit --------------------------------------------------------------

    def record(
        self,
        operation: str,
        key: str,
        from_version: str,
        to_version: str,
        message: str,
        details: Mapping[str, object],
        actor: str,
        organization: str | None,
    ) -> None:
        """Journal, audit and announce (once committed) a lifecycle operation that succeeded."""
        write_journal(
            self.using,
            key,
            operation,
            from_version,
            to_version,
            message,
            details,
            actor,
            organization=organization,
        )
        self._audit(f"addon.{operation}", key, actor, organization, decision="allow", details=details)
        publish_on_commit(
            addon_changed, LifecycleEvent(key, operation, to_version or from_version), using=self.using
        )

    @contextmanager
    def _failure_recorded(
        self,
        operation: str,
        key: str,
        version: str,
        actor: str,
        context: str,
        organization: str | None = None,
    ) -> Iterator[None]:
        """Around any of the five lifecycle operations, whose transaction rolls back on
        failure: journal and audit the failure afterwards (as `record` does a success), and
        raise it as a typed error naming `context`. An addon that is not installed is an
        answer, not a failed operation: NotFound passes unrecorded."""
        try:
            yield
        except NotFound:
            raise
        except Exception as exc:
            error = _as_metacore_error(exc, context)
            self._journal_failure(key, operation, version, error, actor, organization)
            self._audit(
                f"addon.{operation}",
                key,
                actor,
                organization,
                reason=error.message,
                details={"version": version, "ok": False},
            )
            if error is exc:
                raise
            raise error from exc

    def _journal_failure(
        self,
        key: str,
        operation: str,
        version: str,
        error: MetacoreError,
        actor: str,
        organization: str | None = None,
    ) -> None:
        """Record a failed operation; called after its transaction rolled back."""
        try:
            write_journal(
                self.using,
                key,
                operation,
                "",
                version or "",
                error.message,
                {"errors": error.errors},
                actor,
                ok=False,
                organization=organization,
            )
        except Exception:
            log.exception("could not journal the failed %s of %s", operation, key)

    def _audit(
        self, kind: str, addon: str, actor: str, organization: str | None = None, **fields: object
    ) -> None:
        self.audit.record(kind, actor=actor, addon=addon, target=addon, tenant=organization or "", **fields)


def _schema_of(spec: Model) -> tuple[object, ...]:
    """What the database holds of a model: columns as stored, indexes, constraints."""
    columns = tuple(
        (
            c.name,
            c.type,
            c.size,
            c.precision,
            c.scale,
            c.required,
            c.unique,
            c.index,
            c.primary_key,
            (c.references.table, c.references.physical) if c.references else None,
        )
        for c in spec.columns
    )
    return spec.table, columns, tuple((i.columns, i.unique, i.name) for i in spec.indexes)


def _setting_defaults(manifest: Manifest) -> dict[str, object]:
    return {s.key: s.default for s in declared_settings(manifest) if s.has_default}


def _as_metacore_error(exc: Exception, context: str) -> MetacoreError:
    """Typed errors pass through; anything else (a database error, a failing hook) becomes an
    InstallFailed naming the cause, logged with its traceback."""
    if isinstance(exc, MetacoreError):
        return exc
    log.exception("%s", context)
    return InstallFailed(f"{context}: {type(exc).__name__}: {exc}", errors={"install": [str(exc)]})
