"""Upgrade an installed addon to a new bundle: plan (touches nothing) and apply (one transaction).

The plan is the ordered list of `metacore.schema.diff` steps plus what changes besides the
schema (permissions, capabilities, new bundle SQL migrations), each marked safe,
destructive or needs-data-check, with the SQL the current database would run. Applying
re-plans inside the transaction (under a row lock on the installation), refuses what the
plan refuses, runs the steps, the new SQL migrations, the `on_upgrade` hook, and stores the
new manifest, so a failure anywhere leaves the old schema, data and manifest in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from packaging.version import InvalidVersion, Version

from metacore.errors import InvalidInput
from metacore.installer.compat import check_kernel_compatibility
from metacore.installer.errors import UpgradeRefused
from metacore.installer.hooks import run_lifecycle_hook
from metacore.installer.secrets import seal_settings
from metacore.installer.sql_migrations import MigrationOutcome, apply_migrations
from metacore.manifest.model import Manifest
from metacore.models import AppliedMigration, Installation
from metacore.permissions.naming import addon_permissions
from metacore.permissions.sync import permission_renames, upgrade_addon_permissions
from metacore.schema import ddl
from metacore.schema.builder import build_addon_models
from metacore.schema.diff import Differ, Step, collect_sql, run_steps
from metacore.schema.naming import organization_uuid, schema_name
from metacore.schema.registry import bump_registry_revision, in_space
from metacore.schema.types import DESTRUCTIVE, NEEDS_CHECK, SAFE
from metacore.security.patterns import require_grantable
from metacore.store.rls import enable_rls
from metacore.telemetry import set_attributes, span

if TYPE_CHECKING:
    from metacore.context import CallContext
    from metacore.installer.bundle import Bundle
    from metacore.installer.service import InstallerService


@dataclass
class UpgradePlan:
    key: str
    from_version: str
    to_version: str
    steps: list[Step] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # failed data checks, with counts

    @property
    def destructive(self) -> list[str]:
        return [s.words for s in self.steps if s.safety == DESTRUCTIVE]

    def as_dict(self) -> dict[str, object]:
        return {
            "addon": self.key,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "steps": [s.as_dict() for s in self.steps],
            "destructive": self.destructive,
            "blocked": self.blocked,
            "sql": self.sql,
        }

    def as_text(self) -> str:
        lines = [f"Upgrade {self.key} {self.from_version} -> {self.to_version}"]
        if not self.steps:
            lines.append("  (no changes)")
        for number, step in enumerate(self.steps, start=1):
            lines.append(f"  {number:>2}. [{step.safety}] {step.words}")
        for message in self.blocked:
            lines.append(f"  BLOCKED: {message}")
        if self.sql:
            lines.append("")
            lines.append("SQL:")
            lines.extend(f"  {statement}" for statement in self.sql)
        return "\n".join(lines)


@dataclass
class UpgradeResult:
    installation: Installation
    plan: UpgradePlan
    registry_revision: int

    def as_dict(self) -> dict[str, object]:
        return {
            "addon": self.installation.key,
            "version": self.installation.version,
            "registry_revision": self.registry_revision,
            "plan": self.plan.as_dict(),
        }


@contextmanager
def addon_search_path(connection: BaseDatabaseWrapper, addon_key: str) -> Iterator[None]:
    """The addon's PostgreSQL schema first on the search_path for this block: the upgrade's
    schema editor names the addon's tables bare (`schema.diff.run_steps`), and Django's
    introspection finds constraints by bare name among the visible tables. A no-op on SQLite.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path')")
        previous = cursor.fetchone()[0]
        cursor.execute(f"SET search_path TO {connection.ops.quote_name(schema_name(addon_key))}, public")
    try:
        yield
    finally:
        if connection.is_usable() and not connection.needs_rollback:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('search_path', %s, false)", [previous])


def _version(text: str, what: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidInput(
            f"{what} version {text!r} is not a semantic version", errors={"version": [text]}
        ) from None


def _organization(value: object) -> uuid.UUID | None:
    """`--assign-organization`: an organization id (a UUID, as tenant resolvers return)."""
    if value is None or value == "":
        return None
    return organization_uuid(value, "assign_organization")


class Upgrader:
    """Plans and applies upgrades for one InstallerService (same database, journal, audit)."""

    def __init__(self, installer: InstallerService) -> None:
        self.installer = installer
        self.using = installer.using

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    def plan(
        self,
        installation: Installation,
        bundle: Bundle,
        *,
        force: bool = False,
        with_sql: bool = True,
        assign_organization: object = None,
    ) -> UpgradePlan:
        old = Manifest.model_validate(installation.manifest)
        new = bundle.manifest
        if new.key != old.key:
            raise InvalidInput(f"bundle is addon {new.key!r}, not {old.key!r}", errors={"key": [new.key]})
        old_version, new_version = _version(old.version, "installed"), _version(new.version, "new")
        if new_version <= old_version and not force:
            word = "the installed version" if new_version == old_version else "a downgrade"
            raise UpgradeRefused(
                f"{old.key} {new.version} is {word} (installed: {old.version}); use --force to apply it anyway",
                errors={"version": [f"{new.version} is not higher than {old.version}"]},
            )
        if (
            "schema" in (old.tenant_isolation, new.tenant_isolation)
            and old.tenant_isolation != new.tenant_isolation
        ):
            raise UpgradeRefused(
                f"{old.key}: tenant isolation cannot change from {old.tenant_isolation} to {new.tenant_isolation}"
                " by an upgrade (the tables would move); export, uninstall with --drop-data, install, import",
                errors={"tenant_isolation": [f"{old.tenant_isolation} -> {new.tenant_isolation}"]},
            )
        check_kernel_compatibility(new.kernel)
        require_grantable(new)
        vendor = self.connection.vendor
        organization = _organization(assign_organization)
        targets = self._targets(old, new)
        blocked: list[str] = []
        first = None
        for old_target, new_target in targets or [(old, new)]:
            differ = Differ(
                old_target,
                new_target,
                vendor,
                build_addon_models(old_target, revision=0, vendor=vendor).classes,
                assign_organization=organization,
            )
            steps = differ.steps()
            if old_target is not old:  # a schema-per-tenant addon: every copy must pass the checks
                where = f"organization copy {schema_name(old_target.key)}: "
                blocked += [where + message for message in (s.check() for s in steps if s.check) if message]
            first = first or (old_target, differ, steps)
        old_first, differ, steps = first  # type: ignore[misc]  # the loop ran at least once
        steps = steps + self._metadata_steps(old, new, bundle, applied_in=old_first.key)
        plan = UpgradePlan(old.key, old.version, new.version, steps)
        if old.tenant_isolation == "schema":
            plan.blocked = blocked
        else:
            plan.blocked = [message for message in (s.check() for s in steps if s.check) if message]
        if with_sql:
            with addon_search_path(self.connection, old_first.key):
                plan.sql = collect_sql(old_first, steps, self.connection, differ.old_state)
            if self.connection.vendor == "postgresql":  # the steps name the tables bare: say where they are
                plan.sql.insert(
                    0,
                    f"SET search_path TO {self.connection.ops.quote_name(schema_name(old_first.key))}, public;",
                )
        return plan

    def _targets(self, old: Manifest, new: Manifest) -> list[tuple[Manifest, Manifest]]:
        """(installed, new) manifests of every organization copy of a schema-per-tenant addon,
        in space order; [] for a shared addon (its own tables are the one target)."""
        if old.tenant_isolation != "schema":
            return []
        return [
            (in_space(old, c.space), in_space(new, c.space))
            for c in self.installer.tenant_schemas.copies(old.key)
        ]

    def _metadata_steps(self, old: Manifest, new: Manifest, bundle: Bundle, applied_in: str) -> list[Step]:
        """What changes besides the schema: permissions, capabilities, new bundle SQL (as
        recorded for `applied_in`, the addon or its first organization copy)."""
        steps: list[Step] = []
        renames = permission_renames(old, new)
        steps += [
            Step("rename_permission", "", f"rename permission {a} to {b} (grants kept)")
            for a, b in sorted(renames.items())
        ]
        old_perms = {renames.get(p, p) for p in addon_permissions(old)}
        new_perms = set(addon_permissions(new))
        steps += [Step("add_permission", "", f"add permission {p}") for p in sorted(new_perms - old_perms)]
        steps += [
            Step("drop_permission", "", f"drop permission {p} (and its grants)", DESTRUCTIVE)
            for p in sorted(old_perms - new_perms)
        ]
        old_caps = {(c.kind, c.target) for c in old.capabilities}
        new_caps = {(c.kind, c.target) for c in new.capabilities}
        steps += [
            Step("add_capability", "", f"grant capability {k} {t}") for k, t in sorted(new_caps - old_caps)
        ]
        steps += [
            Step("drop_capability", "", f"revoke capability {k} {t}") for k, t in sorted(old_caps - new_caps)
        ]
        applied = dict(
            AppliedMigration.objects.using(self.using)
            .filter(addon_key=applied_in)
            .values_list("name", "checksum")
        )
        for migration in bundle.migrations():
            if migration.name not in applied:
                where = "" if self.connection.vendor == "postgresql" else " (recorded as skipped on SQLite)"
                steps.append(Step("sql_migration", "", f"run bundle SQL migrations/{migration.name}{where}"))
            elif applied[migration.name] != migration.checksum:
                steps.append(
                    Step(
                        "sql_migration",
                        "",
                        f"migrations/{migration.name} changed since it was applied: not run again",
                        NEEDS_CHECK,
                    )
                )
        return steps

    def upgrade(
        self,
        key: str,
        bundle: Bundle,
        *,
        allow_destructive: bool = False,
        force: bool = False,
        context: CallContext,
        assign_organization: object = None,
    ) -> UpgradeResult:
        installer = self.installer
        with transaction.atomic(using=self.using):
            installation = installer.locked(key)
            with span("metacore.upgrade.plan", addon=key):
                plan = self.plan(
                    installation, bundle, force=force, with_sql=False, assign_organization=assign_organization
                )
            set_attributes(steps=len(plan.steps), destructive=len(plan.destructive))
            if plan.blocked:
                raise UpgradeRefused(
                    f"upgrade of {key} stopped: {'; '.join(plan.blocked)}", errors={"data": plan.blocked}
                )
            if plan.destructive and not allow_destructive:
                raise UpgradeRefused(
                    f"upgrade of {key} has destructive steps (allow them explicitly): {'; '.join(plan.destructive)}",
                    errors={"destructive": plan.destructive},
                )
            old = Manifest.model_validate(installation.manifest)
            new = bundle.manifest
            if old.tenant_isolation != "schema":
                migrations = self._apply(old, new, plan.steps, bundle)
            else:
                migrations = []
                for old_target, new_target in self._targets(old, new):  # every copy, this transaction
                    steps = Differ(
                        old_target,
                        new_target,
                        self.connection.vendor,
                        build_addon_models(old_target, revision=0, vendor=self.connection.vendor).classes,
                        assign_organization=_organization(assign_organization),
                    ).steps()
                    migrations += self._apply(old_target, new_target, steps, bundle)
            upgrade_addon_permissions(old, new, self.using)
            installation.name = new.name
            installation.version = new.version
            installation.manifest = new.model_dump(mode="json")
            installation.capabilities = [c.model_dump(mode="json") for c in new.capabilities]
            # settings the new version marks secret are encrypted now
            installation.settings = seal_settings(new, installation.settings, previous=installation.settings)
            installation.bundle_path = str(bundle.root)
            installation.bundle_sha256 = bundle.sha256
            installation.revision += 1
            installation.save(using=self.using)
            with span("metacore.upgrade.hook", addon=key, hook="on_upgrade"):
                run_lifecycle_hook(installer.sandbox, installation, bundle, "on_upgrade", context)
            revision = bump_registry_revision(self.using)
            details = {
                "from_version": old.version,
                "to_version": new.version,
                "steps": [s.words for s in plan.steps],
                "migrations": {m.name: m.status for m in migrations},
            }
            installer.record(
                "upgrade", key, old.version, new.version, "upgraded", details, context.actor, None
            )
        return UpgradeResult(installation, plan, revision)

    def _apply(
        self, old: Manifest, new: Manifest, steps: list[Step], bundle: Bundle
    ) -> list[MigrationOutcome]:
        """Run the schema steps on the tables of `old` (the addon's, or one organization
        copy's), then row-level security and the new bundle SQL migrations."""
        with (
            span("metacore.upgrade.ddl", addon=old.key),
            addon_search_path(self.connection, old.key),
            ddl.schema_editor(self.using) as editor,
        ):
            run_steps(old, steps, editor)
        new_models = build_addon_models(new, revision=0, vendor=self.connection.vendor).classes
        for spec in new.models:
            if spec.org_scoped:  # idempotent: new, renamed and newly org-scoped tables get the policy
                enable_rls(self.connection, new_models[spec.table]._meta.db_table)
        with span("metacore.upgrade.sql_migrations", addon=old.key):
            return apply_migrations(new, bundle.migrations(), using=self.using)


__all__ = ["UpgradePlan", "UpgradeResult", "Upgrader", "SAFE", "DESTRUCTIVE", "NEEDS_CHECK"]
