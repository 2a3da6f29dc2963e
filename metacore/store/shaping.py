"""Sparse fieldsets and one-level expansion of references, for the list and single-row reads:

    GET dynamic/orders?fields=id,status,customer_id&expand=customer_id

`fields` keeps the named columns (and always `id`); `expand=<reference column>` adds the
referenced row under the column's name without `_id` (`customer`), or `<column>_expanded`
when that name is a column. Each expansion needs `<target>.read` (403 otherwise) and reads
only rows the caller's organization sees (a row it cannot see expands to null): the store's
own `scoped_queryset`, in its tenant transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metacore.context import CallContext
from metacore.errors import InvalidInput
from metacore.permissions.naming import model_permission
from metacore.store.service import Row, _reader

if TYPE_CHECKING:
    from metacore.manifest.model import Model
    from metacore.permissions.service import PermissionService
    from metacore.store.service import StoreService

PARAMS = ("fields", "expand")


@dataclass(frozen=True)
class Shape:
    fields: tuple[str, ...] | None
    expand: tuple[tuple[str, str], ...]  # (reference column, key the row is put under)

    @property
    def empty(self) -> bool:
        return self.fields is None and not self.expand


def _names(params: Mapping[str, str], name: str) -> list[str]:
    raw = params.get(name) if hasattr(params, "get") else None
    return [n.strip() for n in (raw or "").split(",") if n.strip()]


def parse_shape(spec: Model, params: Mapping[str, str]) -> Shape:
    errors: dict[str, list[str]] = {}
    fields = _names(params, "fields")
    for name in fields:
        if spec.column(name) is None:
            errors.setdefault("fields", []).append(f'unknown column "{name}"')
    expand: list[tuple[str, str]] = []
    for name in _names(params, "expand"):
        column = spec.column(name)
        if column is None or column.references is None:
            errors.setdefault("expand", []).append(f'"{name}" is not a reference column')
            continue
        key = name[:-3] if name.endswith("_id") and spec.column(name[:-3]) is None else f"{name}_expanded"
        expand.append((name, key))
    if errors:
        field, messages = next(iter(errors.items()))
        raise InvalidInput(f"invalid query parameter {field}: {messages[0]}", errors=errors)
    kept = tuple(dict.fromkeys(["id", *fields, *(c for c, _ in expand)])) if fields else None
    return Shape(fields=kept, expand=tuple(expand))


class RowShaper:
    def __init__(self, store: StoreService, permissions: PermissionService) -> None:
        self.store = store
        self.permissions = permissions

    def apply(self, ctx: CallContext, ref: str, rows: list[Row], params: Mapping[str, str]) -> list[Row]:
        if not any(params.get(name) for name in PARAMS):
            return rows
        resolved = self.store.resolve(ref, ctx.tenant)
        shape = parse_shape(resolved.spec, params)
        if shape.empty:
            return rows
        for column_name, key in shape.expand:
            column = resolved.spec.column(column_name)
            reference = column.references if column is not None else None
            if reference is None:  # parse_shape kept reference columns only
                continue
            target = self.store._referenced(resolved, reference.table)
            self.permissions.require(
                ctx.user, model_permission(target.installation_key, target.spec.table, "read")
            )
            wanted = {row[column_name] for row in rows if row.get(column_name) is not None}
            found: dict[Any, Row] = {}  # referenced value -> row
            if wanted:
                reader = _reader(target)
                with self.store.tenant_transaction(ctx, target):
                    queryset = self.store.scoped_queryset(ctx, target).filter(
                        **{f"{reference.column}__in": wanted}
                    )
                    for found_row in queryset.values(*reader.names):
                        found_row = reader(found_row)
                        found[found_row[reference.column]] = found_row
                self.store.audit_read(
                    ctx, target, details={"via": f"expand {resolved.spec.key}.{column_name}"}
                )
            for row in rows:
                row[key] = found.get(row.get(column_name))
        if shape.fields is not None:
            keep = set(shape.fields) | {key for _, key in shape.expand}
            rows = [{k: v for k, v in row.items() if k in keep} for row in rows]
        return rows
