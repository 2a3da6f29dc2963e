"""Manifest models -> runtime Django model classes.

Each addon's classes live in a private `django.apps.registry.Apps` built for one
(addon, revision): a rebuild makes a fresh registry and drops the old one, so nothing is
registered twice (no "already registered" warning) and nothing accumulates in Django's
global app registry. Living outside the global registry, they are invisible to
`makemigrations`/`migrate`: only `metacore.schema.ddl` creates or drops their tables. (They
stay `managed=True`, because Django's schema editor skips the indexes of unmanaged models.)

Field naming: every concrete field's `attname` and `column` are the manifest column name.
A reference column becomes a ForeignKey to the referenced table's `id` (with a SQL
constraint unless the manifest says `policy: logical`), named after the column without
`_id` (or `<column>_ref`), whose raw value is still read and written under the column name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps.registry import Apps
from django.db import models
from django.db.migrations.state import AppConfigStub

from metacore.errors import InvalidInput
from metacore.manifest.model import Column, Manifest, Model
from metacore.schema.naming import MAX_IDENTIFIER, physical_index, physical_table, schema_name
from metacore.schema.types import get_type

ON_DELETE = {
    "cascade": models.CASCADE,
    "set_null": models.SET_NULL,
    "restrict": models.RESTRICT,
    "no_action": models.DO_NOTHING,
}
# Column names that would shadow a Model attribute or method (`delete`, `save`, `pk`...).
RESERVED_NAMES = frozenset(name for name in dir(models.Model) if not name.startswith("__")) | {
    "objects",
    "pk",
}


class ReferenceField(models.ForeignKey):  # type: ignore[type-arg]  # ForeignKey is not subscriptable at runtime
    """A ForeignKey whose raw value is read and written under its column's own name."""

    def get_attname(self) -> str:
        return self.db_column or super().get_attname()

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.ForeignKey", args, kwargs


@dataclass
class AddonModels:
    """The runtime classes of one addon at one revision."""

    addon_key: str
    revision: int
    manifest: Manifest
    apps: Apps
    classes: dict[str, type[models.Model]] = field(default_factory=dict)  # table -> class

    def model_for(self, table: str) -> type[models.Model] | None:
        return self.classes.get(table)


def app_label(addon_key: str) -> str:
    return schema_name(addon_key)


def index_name(
    addon_key: str, table: str, columns: Sequence[str], unique: bool, vendor: str, declared: str | None = None
) -> str:
    """Deterministic name of a multi-column index (declared, or derived from its columns),
    kept within PostgreSQL's identifier length so introspection finds it as named."""
    name = declared or f"{table}_{'_'.join(columns)}_{'uniq' if unique else 'idx'}"
    if len(name) > MAX_IDENTIFIER - len(schema_name(addon_key)) - 2:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
        name = f"{name[: MAX_IDENTIFIER - len(schema_name(addon_key)) - 12]}_{digest}"
    return physical_index(addon_key, name, vendor)


def field_names(spec: Model) -> dict[str, str]:
    """Manifest column -> Django field name (differs only for reference columns)."""
    taken = {c.name for c in spec.columns}
    names = {}
    for column in spec.columns:
        if column.references is None:
            names[column.name] = column.name
        elif (
            column.name.endswith("_id")
            and column.name[:-3] not in taken
            and column.name[:-3] not in RESERVED_NAMES
        ):
            names[column.name] = column.name[:-3]
        else:
            names[column.name] = f"{column.name}_ref"
    return names


def build_addon_models(
    manifest: Manifest, *, revision: int, vendor: str, label: str | None = None
) -> AddonModels:
    """Build every model of `manifest` in a fresh private registry, under app label `label`
    (default `addon_<key>`; an organization copy is served under its addon's label, so the
    admin and whatever else keys on the label see the addon's model)."""
    check_manifest_models(manifest)
    # An app config stub (as migrations' StateApps uses) so `_meta.related_objects` sees the
    # addon's relations: deletes cascade in Python as the manifest says.
    label = label or app_label(manifest.key)
    apps = Apps(installed_apps=[AppConfigStub(label)])
    built = AddonModels(addon_key=manifest.key, revision=revision, manifest=manifest, apps=apps)
    for spec in manifest.models:
        built.classes[spec.table] = _build_model(manifest.key, spec, apps, vendor, label)
    return built


def check_manifest_models(manifest: Manifest) -> None:
    """Problems Django would only discover half-way through class creation, all at once."""
    problems = {}
    tables = {m.table for m in manifest.models}
    for i, spec in enumerate(manifest.models):
        for j, column in enumerate(spec.columns):
            path = f"models[{i}].columns[{j}]"
            if column.name in RESERVED_NAMES:
                problems[f"{path}.name"] = [f"column name {column.name!r} is reserved"]
            if column.references is not None and column.references.table not in tables:
                problems[f"{path}.references"] = [
                    f"references table {column.references.table!r}, which addon {manifest.key!r} does not declare"
                ]
        for j, index in enumerate(spec.indexes):
            missing = [c for c in index.columns if spec.column(c) is None]
            if missing:
                problems[f"models[{i}].indexes[{j}]"] = [f"unknown column(s) {', '.join(missing)}"]
    if problems:
        raise InvalidInput(f"addon {manifest.key!r}: invalid models", errors=problems)


def _build_model(addon_key: str, spec: Model, apps: Apps, vendor: str, label: str) -> type[models.Model]:
    names = field_names(spec)
    attrs: dict[str, object] = {"__module__": f"metacore.runtime.{addon_key}"}
    for column in spec.columns:
        attrs[names[column.name]] = _field(label, column)
    meta_attrs = {
        "apps": apps,
        "app_label": label,
        "db_table": physical_table(addon_key, spec.table, vendor),
        "default_permissions": (),
        "verbose_name": spec.label or spec.table,
    }
    indexes: list[models.Index] = []
    constraints: list[models.UniqueConstraint] = []
    meta_attrs["indexes"] = indexes
    meta_attrs["constraints"] = constraints
    if spec.column("created_at") is not None:
        meta_attrs["get_latest_by"] = "created_at"
        indexes.append(_default_order_index(addon_key, spec, names, vendor))
    for index in spec.indexes:
        fields = [names[c] for c in index.columns]
        name = index_name(addon_key, spec.table, index.columns, index.unique, vendor, index.name)
        if index.unique:
            constraints.append(models.UniqueConstraint(fields=fields, name=name))
        else:
            indexes.append(models.Index(fields=fields, name=name))
    attrs["Meta"] = type("Meta", (), meta_attrs)
    model_class: type[models.Model] = type(spec.table, (models.Model,), attrs)
    model_class.metacore_spec = spec  # type: ignore[attr-defined]  # a dynamic model carries its spec (permissions.guardian reads it)
    return model_class


def _default_order_index(addon_key: str, spec: Model, names: dict[str, str], vendor: str) -> models.Index:
    """The order of a list without `sortBy` (newest first, `id` breaking ties: store.query),
    within the tenant: a page is read from the index, not sorted from every row of the table."""
    columns = (["organization_id"] if spec.org_scoped else []) + ["created_at", "id"]
    fields = [f"-{names[c]}" if c == "created_at" else names[c] for c in columns]
    return models.Index(
        fields=fields, name=index_name(addon_key, spec.table, ["default", "order"], False, vendor)
    )


def _field(label: str, column: Column) -> models.Field[Any, Any]:
    if column.references is None:
        django_field = get_type(column.type).django_field(column)
        django_field.db_column = column.name
        return django_field
    reference = column.references
    return ReferenceField(
        to=f"{label}.{reference.table}",
        to_field=reference.column,
        on_delete=ON_DELETE[reference.on_delete],
        db_column=column.name,
        db_constraint=reference.physical,
        null=not column.required,
        blank=not column.required,
        unique=column.unique,
        related_name="+",
        verbose_name=column.label or column.name,
    )
