"""Host models: ordinary Django models of the host served like addon models.

    import metacore
    metacore.register_model(Note, key="notes", search=["title", "body"])

A registered model is described by a manifest `Model` derived from its fields (so the
store, the list query language, metadata, options, search, import/export and the hub read it
exactly as they read an addon's) and resolved by the model registry under its key and under
`host.<key>`, the qualified name of the reserved namespace `host` (no addon may take that
key). Nothing is created in the database: the host's own migrations own the table.

- Permissions are the model's Django permissions (`<app>.view_<model>`, `add_`, `change_`,
  `delete_`): the permission service answers the dynamic API's `host.<key>.<action>` from
  them, so groups, superusers and django-guardian object permissions work unchanged.
- Tenancy: a field `organization_id` (a UUID, or the attname of an `organization` foreign key;
  or the `tenant_field` given)
  makes the model organization-scoped like an addon's org-scoped table: every query is
  filtered to the caller's tenant and creates fill it. `tenant_field=None` serves it
  unscoped (every organization sees every row).
- Soft delete: a nullable `deleted_at` date-time field, as for addons.

Specs are derived on first use (after the app registry is ready), so `register_model` may be
called from `AppConfig.ready()` or at the end of a `models.py`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from metacore.manifest.identifiers import RESERVED_ADDON_KEY
from metacore.manifest.model import Column, Manifest, Model, Reference
from metacore.schema.types import column_types

log = logging.getLogger("metacore.registry")

#: The addon key host models are qualified with (`host.<key>`); no addon may use it.
HOST_NAMESPACE = RESERVED_ADDON_KEY
#: A field (name or attname) of this name makes a model organization-scoped unless told otherwise.
DEFAULT_TENANT_FIELD = "organization_id"
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: dynamic API action -> Django's default permission action.
DJANGO_ACTIONS = {"read": "view", "create": "add", "update": "change", "delete": "delete"}


@dataclass(frozen=True)
class HostModel:
    """One registration: the Django model and how the dynamic API serves it."""

    model: type[models.Model]
    key: str
    label: str | None = None
    fields: tuple[str, ...] | None = None  # served fields (default: every supported one)
    exclude: tuple[str, ...] = ()
    search: tuple[str, ...] = ()  # columns `search` looks in (default: the text ones)
    tenant_field: str | None = DEFAULT_TENANT_FIELD  # the tenant column; None: unscoped

    @property
    def qualified_name(self) -> str:
        return f"{HOST_NAMESPACE}.{self.key}"

    def permission(self, action: str) -> str:
        """The Django permission (`app_label.codename`) a dynamic API action needs."""
        opts = self.model._meta
        return f"{opts.app_label}.{get_permission_codename(DJANGO_ACTIONS[action], opts)}"

    def tenant_column(self) -> str | None:
        """The attname of the tenant field, None when the model is not organization-scoped."""
        if self.tenant_field is None:
            return None
        try:
            found = self.model._meta.get_field(self.tenant_field)
        except FieldDoesNotExist:
            if self.tenant_field != DEFAULT_TENANT_FIELD:
                raise ImproperlyConfigured(
                    f"metacore.register_model({self.model.__name__}): tenant_field "
                    f"{self.tenant_field!r} is not a field of the model"
                ) from None
            return None
        return found.attname  # type: ignore[union-attr]  # concrete fields have an attname

    def stamped_on_update(self) -> tuple[str, ...]:
        """Columns Django would refresh on save (`auto_now`): the store's updates set them."""
        return tuple(f.attname for f in self.model._meta.concrete_fields if getattr(f, "auto_now", False))


class HostModels:
    """The process-wide set of registered host models (`metacore.register_model`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: dict[str, HostModel] = {}
        self._manifest: Manifest | None = None
        self._permissions: dict[str, str] | None = None
        self.generation = 0  # bumped on every change: the model registry re-indexes

    def register(
        self,
        model: type[models.Model],
        *,
        key: str | None = None,
        label: str | None = None,
        fields: list[str] | tuple[str, ...] | None = None,
        exclude: list[str] | tuple[str, ...] = (),
        search: list[str] | tuple[str, ...] = (),
        tenant_field: str | None = DEFAULT_TENANT_FIELD,
    ) -> type[models.Model]:
        if not (isinstance(model, type) and issubclass(model, models.Model)) or model._meta.abstract:
            raise ImproperlyConfigured(f"metacore.register_model: {model!r} is not a concrete Django model")
        key = key if key is not None else model._meta.model_name
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise ImproperlyConfigured(
                f"metacore.register_model({model.__name__}): key {key!r} must be lowercase letters, "
                'digits and "_", starting with a letter'
            )
        entry = HostModel(
            model=model,
            key=key,
            label=label,
            fields=tuple(fields) if fields is not None else None,
            exclude=tuple(exclude),
            search=tuple(search),
            tenant_field=tenant_field,
        )
        with self._lock:
            existing = self._registered.get(key)
            if existing is not None and existing.model is not model:
                raise ImproperlyConfigured(
                    f"metacore.register_model({model.__name__}): key {key!r} is already "
                    f"taken by {existing.model.__module__}.{existing.model.__name__}"
                )
            self._registered[key] = entry
            self._changed()
        return model

    def unregister(self, key: str) -> None:
        with self._lock:
            if self._registered.pop(key, None) is not None:
                self._changed()

    def _changed(self) -> None:
        self._manifest, self._permissions = None, None
        self.generation += 1

    def __iter__(self) -> Iterator[HostModel]:
        return iter(list(self._registered.values()))

    def __len__(self) -> int:
        return len(self._registered)

    def get(self, key: str) -> HostModel | None:
        return self._registered.get(key)

    def manifest(self) -> Manifest:
        """One synthetic manifest (`host`) holding the spec of every registered model that
        can be served; a misconfigured one is logged and left out (system check
        metacore.E060 names it), so it never takes the addons' models down with it."""
        manifest = self._manifest
        if manifest is None:
            specs = []
            for entry, spec, problem in self._specs():
                if spec is not None:  # a spec, or the problem that kept it from being one
                    specs.append(spec)
                else:
                    log.error("host model %s is not served: %s", entry.key, problem)
            manifest = Manifest(
                format="flat", key=HOST_NAMESPACE, name="Host models", version="1.0.0", models=tuple(specs)
            )
            self._manifest = manifest
        return manifest

    def problems(self) -> dict[str, str]:
        """Registered key -> why it cannot be served (the system check's findings)."""
        return {entry.key: problem for entry, _, problem in self._specs() if problem is not None}

    def _specs(self) -> Iterator[tuple[HostModel, Model | None, str | None]]:
        entries = list(self._registered.values())
        keys = {e.model: e.key for e in entries}
        for entry in entries:
            try:
                yield entry, model_spec(entry, keys), None
            except ImproperlyConfigured as exc:
                yield entry, None, str(exc)

    def permissions(self) -> dict[str, str]:
        """`host.<key>.<action>` -> the Django permission it stands for."""
        permissions = self._permissions
        if permissions is None:
            permissions = self._permissions = {
                f"{entry.qualified_name}.{action}": entry.permission(action)
                for entry in self._registered.values()
                for action in DJANGO_ACTIONS
            }
        return permissions


#: The host models this process serves (what `metacore.register_model` adds to).
host_models = HostModels()


def model_spec(entry: HostModel, registered: dict[type[models.Model], str]) -> Model:
    """The manifest `Model` describing `entry`'s served fields. `registered` maps the other
    registered model classes to their keys: a foreign key to one becomes a reference."""
    opts = entry.model._meta
    where = f"metacore.register_model({entry.model.__name__})"
    if opts.pk is None or opts.pk.attname != "id":
        raise ImproperlyConfigured(f"{where}: the primary key must be a field named `id`")
    tenant = entry.tenant_column()
    wanted = set(entry.fields) if entry.fields is not None else None
    names = {f.name for f in opts.concrete_fields} | {f.attname for f in opts.concrete_fields}
    unknown = sorted(((wanted or set()) | set(entry.exclude) | set(entry.search)) - names)
    if unknown:
        raise ImproperlyConfigured(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    columns = []
    for django_field in opts.concrete_fields:
        chosen = django_field.primary_key or django_field.attname == tenant
        if not chosen and (
            {django_field.name, django_field.attname} & set(entry.exclude)
            or (wanted is not None and not {django_field.name, django_field.attname} & wanted)
        ):
            continue
        column = _column(django_field, entry, tenant, registered)
        if column is None:
            if wanted is not None:
                raise ImproperlyConfigured(
                    f"{where}: field {django_field.name!r} ({django_field.get_internal_type()}) "
                    "cannot be served; leave it out of `fields`"
                )
            continue  # an unsupported type (files, durations...) is simply not served
        columns.append(column)
    deleted_at = next((c for c in columns if c.name == "deleted_at"), None)
    return Model(
        key=entry.key,
        table=entry.key,
        label=entry.label or str(opts.verbose_name_plural).capitalize(),
        columns=tuple(columns),
        org_scoped=tenant is not None,
        soft_delete=deleted_at is not None and deleted_at.type == "datetime" and not deleted_at.required,
    )


def _column(
    django_field: models.Field[Any, Any],
    entry: HostModel,
    tenant: str | None,
    registered: dict[type[models.Model], str],
) -> Column | None:
    target = django_field.target_field if django_field.is_relation else django_field  # type: ignore[attr-defined]
    if django_field.is_relation and not (django_field.many_to_one or django_field.one_to_one):
        return None
    ctype = column_types.for_django_field(target)
    if ctype is None:
        return None
    name = django_field.attname
    system = (
        django_field.primary_key
        or name == tenant
        or not django_field.editable
        or bool(getattr(django_field, "auto_now", False) or getattr(django_field, "auto_now_add", False))
    )
    default = django_field.default if django_field.has_default() else None
    implicit_blank = django_field.blank and django_field.empty_strings_allowed and not django_field.null
    reference = None
    if django_field.is_relation and django_field.related_model in registered:
        reference = Reference(table=registered[django_field.related_model], column="id")
    auto_label = django_field.name.replace("_", " ")
    parameters = ctype.parameters_of(django_field)
    return Column(
        name=name,
        type=ctype.name,
        label=str(django_field.verbose_name) if str(django_field.verbose_name) != auto_label else None,
        size=parameters.get("size"),
        precision=parameters.get("precision"),
        scale=parameters.get("scale"),
        required=not django_field.null,
        unique=django_field.unique and not django_field.primary_key,
        index=bool(getattr(django_field, "db_index", False)),
        primary_key=django_field.primary_key,
        default=None if callable(default) else default,
        has_default=django_field.has_default() or implicit_blank,
        references=reference,
        searchable=name in entry.search or django_field.name in entry.search,
        system=system,
    )
