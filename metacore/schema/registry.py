"""The registry: the one read model of installed addons, and their runtime models.

Built from the Installation (package) and OrganizationInstallation rows stored in the
database, never from migrations, so a restarted server serves its addons without
reinstalling. Every other module reads installed addons through it (`installed()`,
`enabled_for()`, `resolve()`), never the rows. Freshness costs one query: every
install/upgrade/uninstall/enable/disable/settings change bumps `RegistryState.revision` in
its own transaction; when the number read differs from the one this process built from,
the registry reloads (rebuilding only the addons whose snapshot changed), so a change made
by another process is seen on the next request.

Organizations: an addon is enabled for an organization when its package is enabled and the
organization's own installation says enabled, or, without one, when the package was
installed for every organization. Lookups take `organization=` (the caller's tenant, None
for a caller in no organization); the default `ANY_ORGANIZATION` is for host code that
acts for no one in particular (upgrades, the admin's data pages, the sandbox resolving
its own addon's tables).

Host models (`metacore.register_model`, schema/host.py) are indexed alongside, under their
key and `host.<key>`, served to every organization: a reload keeps them, and a bare name
both an addon and the host use is ambiguous (409) like one two addons share.

A `schema-per-tenant` addon is served from one copy per organization (`TenantSchema`
rows, read at the same reload): `routed` answers the model of one organization's copy,
built on first use and kept until the addon changes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import models as djmodels

from metacore.errors import Conflict, NotFound
from metacore.manifest.model import Manifest, Model
from metacore.schema.builder import AddonModels, build_addon_models
from metacore.schema.host import HOST_NAMESPACE, HostModel, HostModels, host_models

log = logging.getLogger("metacore.registry")


class _AnyOrganization:
    def __repr__(self) -> str:
        return "ANY_ORGANIZATION"


#: Lookups unfiltered by organization (host code acting for no organization in particular).
ANY_ORGANIZATION: Final = _AnyOrganization()
OrganizationFilter = str | None | _AnyOrganization


def organization_key(organization: object) -> str | None:
    """The stored spelling of an organization id: a UUID in its canonical form, anything
    else as text; None and "" mean no organization."""
    if organization is None or organization == "":
        return None
    text = str(organization).strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


@dataclass(frozen=True)
class OrganizationUse:
    """One organization's own installation of an addon (see OrganizationInstallation)."""

    enabled: bool
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class InstalledAddon:
    """An installed (enabled or disabled) addon as this process serves it, at `revision`."""

    id: int  # the installation's primary key
    key: str
    name: str
    version: str
    revision: int
    state: str
    manifest: Manifest
    settings: Mapping[str, Any]  # the host-wide installation's, as stored (secrets sealed)
    bundle_path: str
    bundle_sha256: str
    every_organization: bool
    capabilities: tuple[Mapping[str, Any], ...] = ()  # as granted at install/upgrade
    selected_tools: tuple[str, ...] = ()  # the tools the installer selected; none selected: all
    installed_at: datetime | None = None
    organizations: Mapping[str, OrganizationUse] = field(default_factory=dict)
    models: AddonModels | None = None  # built for enabled addons only

    @property
    def enabled(self) -> bool:
        return self.state == "enabled"

    def installed_for(self, organization: OrganizationFilter) -> bool:
        """Installed for the organization (enabled or not): host-wide, or by its own install."""
        if isinstance(organization, _AnyOrganization):
            return True
        org = organization_key(organization)
        return self.every_organization or (org is not None and org in self.organizations)

    def enabled_for(self, organization: OrganizationFilter) -> bool:
        if not self.enabled:
            return False
        if isinstance(organization, _AnyOrganization):
            return True
        use = self.organizations.get(organization_key(organization) or "")
        return use.enabled if use is not None else self.every_organization

    def settings_for(self, organization: OrganizationFilter) -> dict[str, Any]:
        """The organization's settings: its own values over the host-wide ones (as stored)."""
        use = (
            None
            if isinstance(organization, _AnyOrganization)
            else self.organizations.get(organization_key(organization) or "")
        )
        return {**self.settings, **(use.settings if use is not None else {})}


@dataclass(frozen=True)
class ResolvedModel:
    installation_key: str
    manifest: Manifest
    spec: Model
    model_class: type[djmodels.Model]
    host: HostModel | None = None  # set for a host model (schema/host.py)
    space: str = ""  # the organization copy this class reads ("": the addon's own tables)

    @property
    def per_tenant_schema(self) -> bool:
        """Is this a schema-per-tenant model not yet routed to an organization's copy?"""
        return self.manifest.tenant_isolation == "schema" and not self.space

    @property
    def qualified_name(self) -> str:
        return f"{self.installation_key}.{self.spec.key}"

    @property
    def tenant_column(self) -> str | None:
        """The column holding the organization, None when the model is not org-scoped."""
        if not self.spec.org_scoped:
            return None
        return self.host.tenant_column() if self.host is not None else "organization_id"

    @property
    def stamped_on_update(self) -> tuple[str, ...]:
        """Date-time columns every update sets to now."""
        if self.host is not None:
            return self.host.stamped_on_update()
        return ("updated_at",) if self.spec.column("updated_at") is not None else ()


def bump_registry_revision(using: str = DEFAULT_DB_ALIAS) -> int:
    """Move `RegistryState.revision` forward (inside the caller's transaction).

    Seeded from the clock in microseconds, so the number is never reused even after the
    table is emptied (a test flush): a process holding an old number always reloads.
    """
    from metacore.models import RegistryState

    state, _ = RegistryState.objects.using(using).select_for_update().get_or_create(pk=1)
    state.revision = max(state.revision + 1, time.time_ns() // 1000)
    state.save(update_fields=["revision"])
    _forget_request_revision(using)
    return state.revision


def read_revision(using: str = DEFAULT_DB_ALIAS, column: str = "revision") -> int:
    """A stored revision of `RegistryState` (the registry's, or `access_revision`): one
    primary-key read per request, so it is plain SQL (the ORM's query building would cost
    more than the read itself)."""
    return read_revisions(using, (column,))[0]


def read_revisions(
    using: str = DEFAULT_DB_ALIAS, columns: tuple[str, ...] = ("revision", "access_revision")
) -> tuple[int, ...]:
    """Stored revisions of `RegistryState`, `columns` of them in one primary-key read."""
    from metacore.models import RegistryState

    connection = connections[using]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        selected = ", ".join(qn(column) for column in columns)
        cursor.execute(f"SELECT {selected} FROM {qn(RegistryState._meta.db_table)} WHERE {qn('id')} = 1")
        row = cursor.fetchone()
    return tuple(int(value) for value in row) if row else (0,) * len(columns)


#: Per database, the registry revision read for the current request (`one_revision_read`).
_REQUEST_REVISIONS: ContextVar[dict[str, int] | None] = ContextVar("metacore_request_revisions", default=None)


@contextmanager
def one_revision_read() -> Iterator[None]:
    """Within it (one API request), the registry revision is read once per database, by the
    request's first freshness check or along with the access revision (`read_access_revision`);
    later checks of the same request use it while the registry is still at that revision. A
    store write checked freshness three times more (resolving, the hub's publish, the webhook
    deliveries). A revision this request moves (`bump_registry_revision`: an install, an
    organization's first copy) is read again; one moved by another request or process is seen
    by the next request, as if this one had come a moment earlier."""
    token = _REQUEST_REVISIONS.set({})
    try:
        yield
    finally:
        _REQUEST_REVISIONS.reset(token)


def request_revisions() -> dict[str, int] | None:
    """The registry revisions read for the current request, when inside `one_revision_read`."""
    return _REQUEST_REVISIONS.get()


def _forget_request_revision(using: str) -> None:
    """This request moved the revision: read it again."""
    held = request_revisions()
    if held is not None:
        held.pop(using, None)


class ModelRegistry:
    def __init__(self, using: str = DEFAULT_DB_ALIAS, hosted: HostModels = host_models) -> None:
        self.using = using
        self.hosted = hosted
        self._hosted_generation = -1
        self._lock = threading.RLock()
        self._revision: int | None = None
        self._installed: dict[str, InstalledAddon] = {}
        self._addons: dict[str, AddonModels] = {}
        self._snapshots: dict[str, dict[str, Any]] = {}  # the stored manifest JSON
        self._names: dict[str, list[ResolvedModel]] = {}
        self._spaces: dict[tuple[str, str], str] = {}  # (addon, organization) -> space
        self._copies: dict[str, AddonModels] = {}  # space -> the copy's runtime models

    # -- freshness ----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The registry revision this process serves (after a freshness check)."""
        self.refresh()
        return self._revision or 0  # set by refresh()

    def refresh(self, *, force: bool = False, revision: int | None = None) -> None:
        """Reload from the stored manifests when the database revision moved (one query;
        none when the caller read `revision` in a query of its own)."""
        if revision is None:
            held = request_revisions()
            revision = held.get(self.using) if held is not None else None
            # A revision held by the request serves while the registry is at it; otherwise
            # (not read yet, or another request of this process reloaded since) read it now.
            if revision is None or revision != self._revision:
                revision = read_revision(self.using)
                if held is not None:
                    held[self.using] = revision
        if not force and revision == self._revision and self.hosted.generation == self._hosted_generation:
            return
        with self._lock:
            if force or revision != self._revision:
                self._reload(revision)
            elif self.hosted.generation != self._hosted_generation:
                self._names = self._index(self._addons)

    def invalidate(self) -> None:
        with self._lock:
            self._revision = None

    def _reload(self, revision: int) -> None:
        from metacore.models import Installation, OrganizationInstallation

        vendor = connections[self.using].vendor
        uses: dict[int, dict[str, OrganizationUse]] = {}
        for installation_id, organization, enabled, settings in OrganizationInstallation.objects.using(
            self.using
        ).values_list("installation_id", "organization", "enabled", "settings"):
            uses.setdefault(installation_id, {})[organization] = OrganizationUse(
                enabled, MappingProxyType(settings or {})
            )
        rows = (
            Installation.objects.using(self.using)
            .active()
            .values(
                "id",
                "key",
                "name",
                "version",
                "revision",
                "state",
                "manifest",
                "settings",
                "bundle_path",
                "bundle_sha256",
                "every_organization",
                "capabilities",
                "selected_tools",
                "installed_at",
            )
        )
        installed, addons, snapshots = {}, {}, {}
        for row in rows:
            key, snapshot = row["key"], row["manifest"]
            unchanged = self._snapshots.get(key) == snapshot and key in self._installed
            try:
                manifest = self._installed[key].manifest if unchanged else Manifest.model_validate(snapshot)
                built = None
                if row["state"] == Installation.State.ENABLED:
                    cached = self._addons.get(key)
                    if unchanged and cached is not None and cached.revision == row["revision"]:
                        built = cached
                    else:
                        built = build_addon_models(manifest, revision=row["revision"], vendor=vendor)
                    addons[key] = built
            except Exception:  # one unreadable snapshot must not take every other addon down
                log.exception(
                    "addon %s: cannot build runtime models from its stored manifest; not served", key
                )
                continue
            snapshots[key] = snapshot
            installed[key] = InstalledAddon(
                id=row["id"],
                key=key,
                name=row["name"],
                version=row["version"],
                revision=row["revision"],
                state=row["state"],
                manifest=manifest,
                settings=MappingProxyType(row["settings"] or {}),
                bundle_path=row["bundle_path"],
                bundle_sha256=row["bundle_sha256"],
                every_organization=row["every_organization"],
                capabilities=tuple(row["capabilities"] or ()),
                selected_tools=tuple(row["selected_tools"] or ()),
                installed_at=row["installed_at"],
                organizations=MappingProxyType(uses.get(row["id"], {})),
                models=built,
            )
        self._spaces = self._read_spaces(addons)
        owners = {space: key for (key, _), space in self._spaces.items()}
        self._copies = {  # copies of addons that did not change stay built
            space: built
            for space, built in self._copies.items()
            if space in owners and addons[owners[space]] is self._addons.get(owners[space])
        }
        self._installed, self._addons, self._snapshots = installed, addons, snapshots
        self._names = self._index(addons)
        self._revision = revision

    def _read_spaces(self, addons: dict[str, AddonModels]) -> dict[tuple[str, str], str]:
        from metacore.models import TenantSchema

        per_tenant = [key for key, built in addons.items() if built.manifest.tenant_isolation == "schema"]
        if not per_tenant:
            return {}
        rows = (
            TenantSchema.objects.using(self.using)
            .filter(addon_key__in=per_tenant)
            .values_list("addon_key", "organization_id", "space")
        )
        return {(key, str(organization)): space for key, organization, space in rows}

    def _index(self, addons: dict[str, AddonModels]) -> dict[str, list[ResolvedModel]]:
        names: dict[str, list[ResolvedModel]] = {}
        served = [
            ResolvedModel(key, built.manifest, spec, built.classes[spec.table])
            for key, built in addons.items()
            for spec in built.manifest.models
        ]
        self._hosted_generation = self.hosted.generation
        for resolved in served + self.host_models():
            spec, key = resolved.spec, resolved.installation_key
            spellings = {spec.key.lower(), spec.table.lower()}
            spellings |= {f"{key.lower()}.{s}" for s in tuple(spellings)}
            for spelling in spellings:
                names.setdefault(spelling, []).append(resolved)
        return names

    # -- organization copies (schema-per-tenant) -----------------------------------------

    def routed(self, resolved: ResolvedModel, organization: object) -> ResolvedModel | None:
        """`resolved` (just resolved: this reads the registry as of that refresh, costing no
        query) in `organization`'s copy; None while that copy is not provisioned; NotFound
        when the addon is not enabled for the organization."""
        key = resolved.installation_key
        installed = self._installed.get(key)
        if installed is None or key not in self._addons or not installed.enabled_for(str(organization)):
            raise NotFound(f"addon {key!r} is not installed and enabled for this organization")
        space = self._spaces.get((key, str(organization)))
        if space is None:
            return None
        with self._lock:
            built = self._copies.get(space)
            if built is None or built.revision != self._addons[key].revision:
                built = self._copies[space] = build_addon_models(
                    in_space(resolved.manifest, space),
                    revision=self._addons[key].revision,
                    vendor=connections[self.using].vendor,
                    label=resolved.model_class._meta.app_label,
                )
        return ResolvedModel(
            key, resolved.manifest, resolved.spec, built.classes[resolved.spec.table], space=space
        )

    def spaces(self, addon_key: str) -> dict[str, str]:
        """Organization -> space of every provisioned copy of an enabled addon."""
        self.refresh()
        return {
            organization: space for (key, organization), space in self._spaces.items() if key == addon_key
        }

    # -- lookups ------------------------------------------------------------------------

    def installed(self, addon_key: str) -> InstalledAddon:
        """An installed (enabled or disabled) addon; NotFound otherwise."""
        self.refresh()
        try:
            return self._installed[addon_key]
        except KeyError:
            raise NotFound(f"addon {addon_key!r} is not installed") from None

    def last_read(self, addon_key: str) -> InstalledAddon | None:
        """The installed addon as of the last refresh, None when not installed: no query, for
        a caller that has just refreshed (the enforcer, with the revision it read itself)."""
        return self._installed.get(addon_key)

    def installed_addons(self, organization: OrganizationFilter = ANY_ORGANIZATION) -> list[InstalledAddon]:
        """Every installed addon (enabled or disabled) the organization has, by key."""
        self.refresh()
        return [
            self._installed[key]
            for key in sorted(self._installed)
            if self._installed[key].installed_for(organization)
        ]

    def enabled_for(self, addon_key: str, organization: OrganizationFilter) -> bool:
        """Whether the addon is installed and enabled for the organization (None: a caller in
        no organization, who has the addons installed for every organization). The host's own
        models (`host`) are every organization's."""
        if addon_key == HOST_NAMESPACE:
            return True
        self.refresh()
        addon = self._installed.get(addon_key)
        return addon is not None and addon.enabled_for(organization)

    def resolve(self, ref: str, *, organization: OrganizationFilter = ANY_ORGANIZATION) -> ResolvedModel:
        """An enabled addon's model by key, table or `<addon>.<model>` (case-insensitive),
        among the addons enabled for `organization`.

        NotFound when nothing matches; Conflict (409) naming the qualified alternatives when
        a bare name is exposed by several addons.
        """
        self.refresh()
        matches = self._names.get(str(ref).strip().lower(), [])
        distinct = {
            (m.installation_key, m.spec.table): m
            for m in matches
            if m.host is not None or self._installed[m.installation_key].enabled_for(organization)
        }
        if not distinct:
            raise NotFound(f"unknown model {ref!r}")
        if len(distinct) > 1:
            alternatives = sorted(m.qualified_name for m in distinct.values())
            raise Conflict(
                f"model name {ref!r} is ambiguous; use one of: {', '.join(alternatives)}",
                errors={"model": alternatives},
            )
        return next(iter(distinct.values()))

    def model_for(self, addon_key: str, table: str) -> type[djmodels.Model]:
        """The runtime class of an enabled addon's table; NotFound otherwise."""
        self.refresh()
        built = self._addons.get(addon_key)
        model_class = built.model_for(table) if built else None
        if model_class is None:
            raise NotFound(f"addon {addon_key!r} has no table {table!r}")
        return model_class

    def addon(self, addon_key: str, *, organization: OrganizationFilter = ANY_ORGANIZATION) -> AddonModels:
        self.refresh()
        built = self._addons.get(addon_key)
        if built is None or not self._installed[addon_key].enabled_for(organization):
            raise NotFound(f"addon {addon_key!r} is not installed and enabled")
        return built

    def addons(self, *, organization: OrganizationFilter = ANY_ORGANIZATION) -> list[AddonModels]:
        """Every addon enabled for the organization: its runtime models, by key."""
        self.refresh()
        return [
            self._addons[key]
            for key in sorted(self._addons)
            if self._installed[key].enabled_for(organization)
        ]

    def all_models(self, *, organization: OrganizationFilter = ANY_ORGANIZATION) -> list[ResolvedModel]:
        """Every model of every addon enabled for the organization, in (addon, manifest) order."""
        return [
            ResolvedModel(built.addon_key, built.manifest, spec, built.classes[spec.table])
            for built in self.addons(organization=organization)
            for spec in built.manifest.models
        ]

    def host_models(self) -> list[ResolvedModel]:
        """Every registered host model that can be served, in registration order."""
        manifest = self.hosted.manifest()
        return [
            ResolvedModel(manifest.key, manifest, spec, entry.model, host=entry)
            for spec in manifest.models
            if (entry := self.hosted.get(spec.key)) is not None
        ]

    def served_models(self, *, organization: OrganizationFilter = ANY_ORGANIZATION) -> list[ResolvedModel]:
        """What the dynamic API serves the organization: its enabled addons' models, then the host's."""
        return self.all_models(organization=organization) + self.host_models()


def in_space(manifest: Manifest, space: str) -> Manifest:
    """The manifest of one organization's copy: the addon's models named as if its key were
    `space`, so the builder, DDL, upgrade differ, roles and bundle SQL address that copy."""
    return manifest.model_copy(update={"key": space})
