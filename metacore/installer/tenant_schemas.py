"""Organization copies of `schema-per-tenant` addons: provision, route, drop.

Upstream's second isolation mode (dynamic/isolation.go) gives every organization its own
copy of an addon's tables, so no row of one organization ever shares a table with
another's. Here a copy lives in the *space* `<key>_<org8>` (schema.naming.tenant_space):
PostgreSQL schema `addon_<key>_<org8>`, SQLite tables `addon_<key>_<org8>__<table>`.
The copy is built from the addon's manifest renamed to the space (`registry.in_space`), so
the same DDL, row-level security, bundle SQL migrations, confinement roles and upgrade
operations as a shared addon's apply to it unchanged.

A copy is provisioned when an organization first uses the addon (`route`, for a host-wide
installation, available to every organization present and future) or explicitly
(`provision`, what an organization's own install calls), and recorded in `TenantSchema`,
so upgrades and uninstalls reach every copy. Every table of such an addon still carries
`organization_id` under row-level security (manifest.parse scopes them): the copy is the
first wall, the column the second.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from metacore.errors import Conflict, Forbidden, NotFound
from metacore.installer.bundle import Migration
from metacore.installer.journal import write_journal
from metacore.installer.sql_migrations import MigrationOutcome, apply_migrations
from metacore.manifest.model import Manifest
from metacore.models import AppliedMigration, Installation, TenantSchema
from metacore.schema import ddl
from metacore.schema.builder import build_addon_models
from metacore.schema.naming import organization_uuid, schema_name, tenant_space
from metacore.schema.registry import ResolvedModel, in_space
from metacore.schema.roles import drop_addon_roles
from metacore.store.rls import enable_rls

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.schema.registry import ModelRegistry


def installed_migrations(installation: Installation) -> list[Migration]:
    """The bundle SQL migrations of the installed version, read from its extracted bundle
    (a copy provisioned after the install runs the same files the install checked)."""
    folder = Path(installation.bundle_path) / "migrations" if installation.bundle_path else None
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.sql")):
        data = path.read_bytes()
        sql = data.decode("utf-8").replace("{{ADDON_KEY}}", installation.key)
        found.append(Migration(path.name, sql, hashlib.sha256(data).hexdigest()))
    return found


class TenantSchemaService:
    def __init__(self, registry: ModelRegistry, audit: AuditPipe, using: str = DEFAULT_DB_ALIAS) -> None:
        self.registry = registry
        self.audit = audit
        self.using = using

    # -- routing --------------------------------------------------------------------------

    def route(self, resolved: ResolvedModel, tenant: object) -> ResolvedModel:
        """`resolved` as the caller's organization sees it: unchanged for a shared addon, its
        organization's copy (provisioned on first use) for a schema-per-tenant one."""
        if not resolved.per_tenant_schema:
            return resolved
        if not tenant:
            raise Forbidden(
                f'model "{resolved.qualified_name}" is kept per organization (schema-per-tenant) and'
                " the current user belongs to no organization"
            )
        try:
            organization = uuid.UUID(str(tenant))
        except ValueError:
            raise Forbidden(
                f"the tenant resolver returned {str(tenant)[:64]!r}, which is not an organization id"
            ) from None
        registry = self.registry
        routed = registry.routed(resolved, organization)  # NotFound unless enabled for it
        if routed is None:
            self.provision(resolved.installation_key, organization)
            registry.refresh()
            routed = registry.routed(resolved, organization)
        if routed is None:  # provisioned, but the addon changed meanwhile
            raise NotFound(f"addon {resolved.installation_key!r} is not installed and enabled")
        return routed

    def _require_enabled(self, key: str, organization: uuid.UUID) -> None:
        """Only an organization that has the addon enabled reaches (or gets) a copy: one
        installed for other organizations only is not provisioned for it on first use."""
        if not self.registry.enabled_for(key, str(organization)):
            raise NotFound(f"addon {key!r} is not installed and enabled for this organization")

    def space_for(self, key: str, organization: object) -> str:
        """The space of `organization`'s copy of enabled addon `key`, provisioned if new."""
        organization = organization_uuid(organization)
        self._require_enabled(key, organization)
        space = self.registry.spaces(key).get(str(organization))
        return space or self.provision(key, organization).space

    # -- provisioning ---------------------------------------------------------------------

    def provision(
        self,
        key: str,
        organization: object,
        *,
        migrations: Iterable[Migration] | None = None,
        actor: str = "",
    ) -> TenantSchema:
        """Create `organization`'s copy of addon `key` (idempotent) in one transaction:
        schema, tables, row-level security, bundle SQL migrations, `TenantSchema` row,
        registry revision. `migrations` default to the installed bundle's."""
        from metacore.installer.service import lock_addon_key
        from metacore.schema.registry import bump_registry_revision

        organization = organization_uuid(organization)
        with transaction.atomic(using=self.using):
            lock_addon_key(connections[self.using], key)
            copy = (
                TenantSchema.objects.using(self.using)
                .filter(addon_key=key, organization_id=organization)
                .first()
            )
            if copy is not None:
                return copy
            installation = Installation.objects.using(self.using).filter(key=key).first()
            if installation is None or installation.state == Installation.State.UNINSTALLED:
                raise NotFound(f"addon {key!r} is not installed")
            manifest = Manifest.model_validate(installation.manifest)
            if manifest.tenant_isolation != "schema":
                raise Conflict(
                    f"addon {key!r} is not isolated schema-per-tenant; it has no organization copies"
                )
            space = tenant_space(key, organization)
            self._check_space_free(space)
            outcomes = self._create_copy(
                in_space(manifest, space),
                installation.revision,
                installed_migrations(installation) if migrations is None else migrations,
            )
            copy = TenantSchema.objects.using(self.using).create(
                addon_key=key, organization_id=organization, space=space
            )
            bump_registry_revision(self.using)
            details = {
                "organization": str(organization),
                "space": space,
                "migrations": {m.name: m.status for m in outcomes},
            }
            write_journal(
                self.using,
                key,
                "provision",
                "",
                installation.version,
                f"copy {schema_name(space)}",
                details,
                actor,
            )
            self.audit.record(
                "addon.provision",
                actor=actor,
                tenant=str(organization),
                addon=key,
                target=key,
                details=details,
            )
        return copy

    def check_not_a_copy(self, addon_key: str) -> None:
        """An addon key equal to a copy's space would share that copy's schema: Conflict."""
        taken = TenantSchema.objects.using(self.using).filter(space=addon_key).first()
        if taken is not None:
            raise Conflict(
                f"{schema_name(addon_key)} already holds organization {taken.organization_id}'s copy of"
                f" {taken.addon_key}; addon key {addon_key!r} cannot be installed",
                errors={"key": ["names an organization copy's schema"]},
            )

    def _check_space_free(self, space: str) -> None:
        taken = TenantSchema.objects.using(self.using).filter(space=space).first()
        if taken is not None:  # another organization whose id starts with the same 8 hex digits
            raise Conflict(
                f"{schema_name(space)} already holds organization {taken.organization_id}'s copy of {taken.addon_key}"
                " (their ids share the first 8 hex digits)",
                errors={"organization": ["schema name taken"]},
            )
        if Installation.objects.using(self.using).filter(key=space).exists():
            raise Conflict(
                f"{schema_name(space)} is the schema of the installed addon {space!r}",
                errors={"organization": ["schema name taken"]},
            )

    def _create_copy(
        self, copy: Manifest, revision: int, migrations: Iterable[Migration]
    ) -> list[MigrationOutcome]:
        present = ddl.addon_tables(copy.key, self.using)
        if present:
            raise Conflict(
                f"{schema_name(copy.key)} already has table(s) {', '.join(present)} without a recorded copy;"
                " drop them first",
                errors={"tables": present},
            )
        connection = connections[self.using]
        built = build_addon_models(copy, revision=revision, vendor=connection.vendor)
        ddl.ensure_schema(copy.key, self.using)
        with ddl.schema_editor(self.using) as editor:
            ddl.create_tables(editor, built.classes.values())
        for spec in copy.models:
            if spec.org_scoped:
                enable_rls(connection, built.classes[spec.table]._meta.db_table)
        return apply_migrations(copy, migrations, using=self.using)

    # -- dropping -------------------------------------------------------------------------

    def copies(self, key: str) -> list[TenantSchema]:
        """Every organization's copy of addon `key` (enabled or not)."""
        return list(TenantSchema.objects.using(self.using).filter(addon_key=key))

    def drop(self, key: str, organization: object) -> bool:
        """Drop `organization`'s copy: tables, schema, roles, migration records, its row.
        False when the organization has none (it never used the addon)."""
        copy = (
            TenantSchema.objects.using(self.using)
            .filter(addon_key=key, organization_id=organization_uuid(organization))
            .first()
        )
        if copy is not None:
            self._drop_copy(key, copy)
        return copy is not None

    def drop_all(self, key: str, manifest: Manifest) -> list[str]:
        """Drop every organization's copy of `key` (uninstall with drop); the spaces dropped."""
        spaces = []
        for copy in self.copies(key):
            self._drop_copy(key, copy, manifest)
            spaces.append(copy.space)
        return spaces

    def _drop_copy(self, key: str, copy: TenantSchema, manifest: Manifest | None = None) -> None:
        from metacore.installer.service import drop_addon_tables
        from metacore.schema.registry import bump_registry_revision

        with transaction.atomic(using=self.using):
            if manifest is None:
                manifest = Manifest.model_validate(
                    Installation.objects.using(self.using).get(key=key).manifest
                )
            drop_addon_tables(in_space(manifest, copy.space), self.using)
            drop_addon_roles(copy.space, self.using)
            AppliedMigration.objects.using(self.using).filter(addon_key=copy.space).delete()
            copy.delete(using=self.using)
            bump_registry_revision(self.using)

    def drop_roles(self, key: str) -> None:
        """Drop the confinement roles of every copy (uninstall keeping data; they are made
        again on the next use)."""
        for copy in self.copies(key):
            drop_addon_roles(copy.space, self.using)
