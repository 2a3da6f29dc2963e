"""The runtime model registry: which addon models exist right now, in this process.

Built from the Installation manifests stored in the database, never from migrations, so a
restarted server serves its addons without reinstalling. Freshness costs one query: every
install/upgrade/uninstall/enable/disable bumps `RegistryState.revision` in its own
transaction; when the number read differs from the one this process built from, the
registry reloads (rebuilding only the addons whose snapshot changed), so a change made by
another process is seen on the next request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db import models as djmodels

from metacore.errors import Conflict, NotFound
from metacore.manifest.model import Manifest, Model
from metacore.schema.builder import AddonModels, build_addon_models

log = logging.getLogger("metacore.registry")


@dataclass(frozen=True)
class ResolvedModel:
    installation_key: str
    manifest: Manifest
    spec: Model
    model_class: type[djmodels.Model]

    @property
    def qualified_name(self) -> str:
        return f"{self.installation_key}.{self.spec.key}"


def read_revision(using: str = DEFAULT_DB_ALIAS) -> int:
    """The stored registry revision: one primary-key read before every resolve, so it is
    plain SQL (the ORM's query building would cost more than the read itself)."""
    from metacore.models import RegistryState

    connection = connections[using]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn('revision')} FROM {qn(RegistryState._meta.db_table)} WHERE {qn('id')} = 1"
        )
        row = cursor.fetchone()
    return row[0] if row else 0


class ModelRegistry:
    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        self._lock = threading.RLock()
        self._revision: int | None = None
        self._addons: dict[str, AddonModels] = {}
        self._snapshots: dict[str, dict[str, Any]] = {}  # the stored manifest JSON
        self._names: dict[str, list[ResolvedModel]] = {}

    # -- freshness ----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The registry revision this process serves (after a freshness check)."""
        self.refresh()
        return self._revision or 0  # set by refresh()

    def refresh(self, *, force: bool = False) -> None:
        """Reload from the stored manifests when the database revision moved (one query)."""
        revision = read_revision(self.using)
        if not force and revision == self._revision:
            return
        with self._lock:
            if force or revision != self._revision:
                self._reload(revision)

    def invalidate(self) -> None:
        with self._lock:
            self._revision = None

    def _reload(self, revision: int) -> None:
        from metacore.models import Installation

        vendor = connections[self.using].vendor
        rows = (
            Installation.objects.using(self.using)
            .filter(state=Installation.State.ENABLED)
            .values_list("key", "revision", "manifest")
        )
        addons, snapshots = {}, {}
        for key, addon_revision, snapshot in rows:
            cached = self._addons.get(key)
            if (
                cached is not None
                and self._snapshots.get(key) == snapshot
                and cached.revision == addon_revision
            ):
                addons[key] = cached
            else:
                try:
                    addons[key] = build_addon_models(
                        Manifest.model_validate(snapshot), revision=addon_revision, vendor=vendor
                    )
                except Exception:  # one unreadable snapshot must not take every other addon down
                    log.exception(
                        "addon %s: cannot build runtime models from its stored manifest; not served", key
                    )
                    continue
            snapshots[key] = snapshot
        self._addons, self._snapshots = addons, snapshots
        self._names = self._index(addons)
        self._revision = revision

    @staticmethod
    def _index(addons: dict[str, AddonModels]) -> dict[str, list[ResolvedModel]]:
        names: dict[str, list[ResolvedModel]] = {}
        for key, built in addons.items():
            for spec in built.manifest.models:
                resolved = ResolvedModel(key, built.manifest, spec, built.classes[spec.table])
                spellings = {spec.key.lower(), spec.table.lower()}
                spellings |= {f"{key.lower()}.{s}" for s in tuple(spellings)}
                for spelling in spellings:
                    names.setdefault(spelling, []).append(resolved)
        return names

    # -- lookups ------------------------------------------------------------------------

    def resolve(self, ref: str) -> ResolvedModel:
        """An enabled addon's model by key, table or `<addon>.<model>` (case-insensitive).

        NotFound when nothing matches; Conflict (409) naming the qualified alternatives when
        a bare name is exposed by several addons.
        """
        self.refresh()
        matches = self._names.get(str(ref).strip().lower(), [])
        distinct = {(m.installation_key, m.spec.table): m for m in matches}
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

    def addon(self, addon_key: str) -> AddonModels:
        self.refresh()
        try:
            return self._addons[addon_key]
        except KeyError:
            raise NotFound(f"addon {addon_key!r} is not installed and enabled") from None

    def addons(self) -> list[AddonModels]:
        """Every enabled addon's runtime models, by key."""
        self.refresh()
        return [self._addons[key] for key in sorted(self._addons)]

    def all_models(self) -> list[ResolvedModel]:
        """Every model of every enabled addon, in (addon, manifest) order."""
        return [
            ResolvedModel(built.addon_key, built.manifest, spec, built.classes[spec.table])
            for built in self.addons()
            for spec in built.manifest.models
        ]
