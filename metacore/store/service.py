"""The dynamic store: CRUD over installed addons' tables, framework-agnostic.

Every operation takes a `CallContext` (who, for which tenant; `metacore.context`) and a model reference
(`tickets`, `Tickets`, `tickets.tickets`), and
- checks the user permission `<addon>.<table>.<action>` (permission service),
- scopes every query to the tenant on org-scoped tables (another tenant's row is "not
  found") and hides soft-deleted rows,
- on PostgreSQL, sets `metacore.tenant` for the transaction, which the row-level security
  policy on org-scoped tables compares with `organization_id` (see `metacore.store.rls`),
- writes: validates from the manifest, audits `crud.<action>` in the same transaction and
  publishes a `DataEvent` once the transaction commits.

Reads use `.values()` and the column types' `to_json` (or, in the compiled reads, the types'
`json_from_db`), not model instances or ModelSerializer: a list page costs one COUNT and one
SELECT whatever its size.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.db import DataError, IntegrityError, connections, transaction
from django.db.models import Model as DjangoModel
from django.db.models import QuerySet
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from metacore.audit.sinks import atomic_with_audit
from metacore.conf import metacore_settings
from metacore.context import CallContext, user_actor
from metacore.errors import Conflict, Forbidden, InvalidInput, NotFound
from metacore.events import DataEvent, data_changed, publish_on_commit
from metacore.manifest.model import SYSTEM_COLUMNS
from metacore.permissions.naming import model_permission
from metacore.schema.registry import ANY_ORGANIZATION, OrganizationFilter, ResolvedModel
from metacore.schema.types import ColumnType, get_type
from metacore.store import rls
from metacore.store.compiled import CompiledReads, prepared
from metacore.store.query import QueryParams, parse_list_query
from metacore.store.validation import serializer_class
from metacore.telemetry import set_attributes

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.installer.tenant_schemas import TenantSchemaService
    from metacore.manifest.model import Model
    from metacore.permissions.service import PermissionService
    from metacore.schema.registry import ModelRegistry

#: A row as the API shows it: column name -> JSON-ready value.
Row = dict[str, Any]

#: Filled with the acting user's id on create when the table has it (upstream BaseModel).
CREATOR = "created_by_id"
ACTION_EVENTS = {"create": "created", "update": "updated", "delete": "deleted"}


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int | None  # None: not counted (`count=none`)
    page: int
    per_page: int
    keyset: bool = False
    next_cursor: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        if self.keyset:
            return {"total": self.total, "per_page": self.per_page, "next_cursor": self.next_cursor}
        return {
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "last_page": None if self.total is None else max(1, math.ceil(self.total / self.per_page)),
        }


class _Reader:
    """How to turn `.values()` rows of one model into JSON-ready dicts (built once per class);
    the compiled reads take its column types (`metacore.store.compiled.JsonColumns`)."""

    def __init__(self, spec: Model) -> None:
        self.names = tuple(c.name for c in spec.columns)
        self.types = {c.name: get_type(c.type) for c in spec.columns}
        self.converters: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
            (name, column_type.to_json)
            for name, column_type in self.types.items()
            if type(column_type).to_json is not ColumnType.to_json
        )

    def __call__(self, row: Row) -> Row:
        for name, to_json in self.converters:
            row[name] = to_json(row[name])
        return row


_READERS: WeakKeyDictionary[type[DjangoModel], _Reader] = WeakKeyDictionary()
#: The get-one and unfiltered list statements, compiled once per model (metacore.store.compiled).
_COMPILED = CompiledReads()


def _reader(resolved: ResolvedModel) -> _Reader:
    reader = _READERS.get(resolved.model_class)
    if reader is None:
        reader = _READERS[resolved.model_class] = _Reader(resolved.spec)
    return reader


_SQLITE_CONSTRAINT = re.compile(r"constraint failed: (.+)$")
_POSTGRES_KEY = re.compile(r"Key \(([^)]*)\)=")


def integrity_conflict(spec: Model, exc: Exception) -> Conflict:
    """A 409 for a database constraint violation, naming the manifest columns involved
    (parsed from SQLite's `table.column` list or PostgreSQL's `Key (column, ...)` detail),
    never the database's text, which names physical tables."""
    text = str(exc)
    names = []
    if match := _POSTGRES_KEY.search(text):
        names = [name.strip().strip('"') for name in match.group(1).split(",")]
    elif match := _SQLITE_CONSTRAINT.search(text.strip().splitlines()[0] if text.strip() else ""):
        names = [part.rsplit(".", 1)[-1].strip() for part in match.group(1).split(",")]
    column = getattr(getattr(exc.__cause__, "diag", None), "column_name", None)
    if column:
        names.append(column)
    columns = [name for name in dict.fromkeys(names) if spec.column(name) is not None]
    lowered = text.lower()
    if "unique" in lowered or "duplicate key" in lowered:
        reason = "a row with this value already exists"
    elif "foreign key" in lowered:
        reason = "refers to a row that does not exist, or is still referenced"
    elif "null" in lowered:
        reason = "this field is required"
    else:
        reason = "violates a constraint of the table"
    where = f" ({', '.join(columns)})" if columns else ""
    return Conflict(
        f"the write conflicts with existing data{where}: {reason}",
        errors={name: [reason] for name in columns},
    )


def _json_object(data: object) -> dict[str, Any]:
    """A write's body, which must be a JSON object."""
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", errors={"body": ["expected a JSON object"]})
    return data


def _key_type(resolved: ResolvedModel, name: str | None) -> ColumnType:
    """The type of an id or tenant column: UUID for addons, the field's for a host model."""
    column = resolved.spec.column(name) if name else None
    return get_type(column.type if column is not None else "uuid")


def _plan(value: Any) -> Any:
    """psycopg returns EXPLAIN's JSON parsed or as text, depending on the column type it sees."""
    return (json.loads(value) if isinstance(value, str) else value)[0]


class StoreService:
    def __init__(
        self,
        registry: ModelRegistry,
        tenant_schemas: TenantSchemaService,
        permissions: PermissionService,
        audit: AuditPipe,
    ) -> None:
        self.registry = registry
        self.tenant_schemas = tenant_schemas
        self.permissions = permissions
        self.audit = audit

    # -- reads ----------------------------------------------------------------------------
    def list(self, ctx: CallContext, ref: str, params: QueryParams) -> Page:
        resolved = self._authorize(ctx, ref, "read")
        query = parse_list_query(resolved.spec, params, using=self._db(resolved))
        reader = _reader(resolved)
        model, using = resolved.model_class, self._db(resolved)
        with self._tenant_transaction(ctx, resolved, write=False):

            def queryset() -> QuerySet[DjangoModel]:
                return query.apply(self.scoped_queryset(ctx, resolved))

            def scope() -> Sequence[Any]:
                return self._scope_params(ctx, resolved)

            # Only the tenant (and soft delete) in WHERE: the statement's shape is its order.
            compiled = not query.where and not query.keyset
            # COUNT + page rather than one query with COUNT(*) OVER (): the window makes the
            # database materialise and sort every row, where ORDER BY .. LIMIT keeps a top-N.
            if compiled and self._counts_exactly(using, query.count):
                total: int | None = _COMPILED.count(model, using, queryset, "count", scope)
            else:
                total = self._count(queryset(), query.count)
            # A cursor page reads one row more: whether there is a next page to point at.
            end = query.offset + query.per_page + (1 if query.keyset else 0)
            if total is not None and query.offset >= total and not query.keyset:
                rows = []
            elif compiled:
                shape = ("list", query.ordering, reader.names)
                rows = _COMPILED.select(
                    model, using, queryset, shape, reader.names, scope, query.offset, end, json=reader
                )
            else:
                page = query.page_after(queryset()).values(*reader.names)[query.offset : end]
                rows = [reader(row) for row in page]
        more = len(rows) > query.per_page
        rows = rows[: query.per_page]
        self.audit_read(ctx, resolved, details={"total": total, "page": query.page})
        return Page(
            rows=rows,
            total=total,
            page=query.page,
            per_page=query.per_page,
            keyset=query.keyset,
            next_cursor=query.cursor_after(rows[-1]) if query.keyset and more else None,
        )

    #: Below this planner estimate `count=estimated` counts exactly (as PostgREST's does).
    EXACT_COUNT_BELOW = 10_000

    @staticmethod
    def _counts_exactly(using: str, mode: str) -> bool:
        """Whether `_count` answers COUNT(*) for `mode` on `using`."""
        return mode == "exact" or (mode == "estimated" and connections[using].vendor != "postgresql")

    def _scope_params(self, ctx: CallContext, resolved: ResolvedModel) -> Sequence[Any]:
        """The parameters `scoped_queryset` compiles to: the tenant value, on org-scoped tables."""
        if resolved.tenant_column is None:
            return []
        value = self._tenant_value(ctx, resolved)
        return [prepared(resolved.model_class, resolved.tenant_column, value, self._db(resolved))]

    def _count(self, queryset: QuerySet[Any], mode: str) -> int | None:
        """`meta.total` as asked: COUNT(*), the PostgreSQL planner's row estimate for the
        filtered query (exact when small; SQLite has no estimate: exact), or nothing."""
        if mode == "none":
            return None
        if mode == "estimated" and connections[queryset.db].vendor == "postgresql":
            sql, params = queryset.order_by().query.sql_with_params()
            with connections[queryset.db].cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                estimate = int(_plan(cursor.fetchone()[0])["Plan"]["Plan Rows"])
            if estimate >= self.EXACT_COUNT_BELOW:
                return estimate
        return queryset.count()

    def get(self, ctx: CallContext, ref: str, row_id: object) -> Row:
        resolved = self._authorize(ctx, ref, "read")
        with self._tenant_transaction(ctx, resolved, write=False):
            row = self._fetch(ctx, resolved, row_id)
        self.audit_read(ctx, resolved, row_id=row["id"])
        return row

    # -- writes ---------------------------------------------------------------------------
    def create(self, ctx: CallContext, ref: str, data: object) -> Row:
        resolved = self._authorize(ctx, ref, "create")
        spec = resolved.spec
        data = _json_object(data)
        if CREATOR in data:
            # Upstream fills the creator itself: what the client sends is never trusted.
            data = {k: v for k, v in data.items() if k != CREATOR}
        values = self._validate(resolved, data, partial=False)
        creator = spec.column(CREATOR)
        if creator is not None and user_actor(ctx.user):
            with contextlib.suppress(ValueError):
                values[CREATOR] = get_type(creator.type).parse(user_actor(ctx.user))
        now = timezone.now()
        if resolved.tenant_column is not None:
            values[resolved.tenant_column] = self._tenant_value(ctx, resolved)
        for name in ("created_at", "updated_at"):
            if spec.column(name) is not None:
                values[name] = now
        with self._write(ctx, resolved):
            self._check_unique(resolved, values)
            self._check_references(ctx, resolved, values)
            instance = resolved.model_class(**values)
            instance.save(force_insert=True, using=self._db(resolved))
            after = self._instance_row(resolved, instance)
            self._record(ctx, resolved, "create", after["id"], fields=tuple(data), before=None, after=after)
        return after

    def update(
        self, ctx: CallContext, ref: str, row_id: object, data: object, *, partial: bool = True
    ) -> Row:
        """Load, merge the given keys, save: keys missing from `data` keep their value
        (the upstream meaning of PUT; PATCH is the same). `partial=False` additionally
        requires every required column in `data`."""
        resolved = self._authorize(ctx, ref, "update")
        values = self._validate(resolved, _json_object(data), partial=partial)
        with self._write(ctx, resolved):
            before = self._fetch(ctx, resolved, row_id, for_update=True)
            self._check_unique(resolved, values, exclude_id=before["id"])
            self._check_references(ctx, resolved, values)
            changes = dict(values)
            changes.update(dict.fromkeys(resolved.stamped_on_update, timezone.now()))
            self._base(resolved).filter(pk=before["id"]).update(**changes)
            after = self._fetch(ctx, resolved, before["id"])
            changed = tuple(k for k in values if after.get(k) != before.get(k))
            self._record(ctx, resolved, "update", after["id"], fields=changed, before=before, after=after)
        return after

    def delete(self, ctx: CallContext, ref: str, row_id: object) -> None:
        """Soft-delete tables get `deleted_at` set; others lose the row."""
        resolved = self._authorize(ctx, ref, "delete")
        with self._write(ctx, resolved):
            before = self._fetch(ctx, resolved, row_id, for_update=True)
            rows = self._base(resolved).filter(pk=before["id"])
            if resolved.spec.soft_delete:
                rows.update(deleted_at=timezone.now())
            else:
                rows.delete()
            self._record(ctx, resolved, "delete", before["id"], fields=(), before=before, after=None)

    # -- building blocks other subsystems reuse -------------------------------------------
    def resolve(self, ref: str, organization: OrganizationFilter = ANY_ORGANIZATION) -> ResolvedModel:
        """The model named `ref` among the addons enabled for `organization`."""
        return self.registry.resolve(ref, organization=organization)

    def scoped_queryset(self, ctx: CallContext, resolved: ResolvedModel) -> QuerySet[DjangoModel]:
        """Rows of `resolved` this context may see: its tenant's (in its tenant's copy, for a
        schema-per-tenant addon), not soft-deleted."""
        resolved = self.tenant_schemas.route(resolved, ctx.tenant)
        queryset = self._base(resolved)
        if resolved.tenant_column is not None:
            queryset = queryset.filter(**{resolved.tenant_column: self._tenant_value(ctx, resolved)})
        if resolved.spec.soft_delete:
            queryset = queryset.filter(deleted_at__isnull=True)
        return queryset

    @contextlib.contextmanager
    def tenant_transaction(self, ctx: CallContext, resolved: ResolvedModel) -> Iterator[None]:
        """A transaction with `metacore.tenant` set (the row-level security wall)."""
        with self._tenant_transaction(ctx, resolved, write=True):
            yield

    # -- internals ------------------------------------------------------------------------
    def _authorize(self, ctx: CallContext, ref: str, action: str) -> ResolvedModel:
        resolved = self.resolve(ref, ctx.tenant)
        set_attributes(addon=resolved.installation_key, model=resolved.spec.table, tenant=ctx.tenant)
        self.permissions.require(
            ctx.user, model_permission(resolved.installation_key, resolved.spec.table, action)
        )
        if resolved.spec.org_scoped:
            self._tenant_value(ctx, resolved)
        return self.tenant_schemas.route(resolved, ctx.tenant)

    @staticmethod
    def _tenant_value(ctx: CallContext, resolved: ResolvedModel) -> Any:
        """The caller's organization as a value of the model's tenant column."""
        if not ctx.tenant:
            raise Forbidden(
                f'model "{resolved.installation_key}.{resolved.spec.table}" is organization-scoped and'
                " the current user belongs to no organization"
            )
        try:
            return _key_type(resolved, resolved.tenant_column).parse(str(ctx.tenant))
        except ValueError:
            raise Forbidden(
                f"the tenant resolver returned {ctx.tenant!r}, which is not an organization id"
            ) from None

    @staticmethod
    def _db(resolved: ResolvedModel) -> str:
        return resolved.model_class._default_manager.db

    def _base(self, resolved: ResolvedModel) -> QuerySet[DjangoModel]:
        return resolved.model_class._default_manager.using(self._db(resolved))

    @contextlib.contextmanager
    def _tenant_transaction(
        self, ctx: CallContext, resolved: ResolvedModel, *, write: bool
    ) -> Iterator[None]:
        using = self._db(resolved)
        needs_tenant = resolved.spec.org_scoped and rls.binds(connections[using])
        if not (write or needs_tenant):
            yield
            return
        # A write's audit records are inserted together just before it commits.
        with atomic_with_audit(using) if write else transaction.atomic(using=using):
            if needs_tenant:
                rls.set_tenant(connections[using], ctx.tenant)
            yield

    @contextlib.contextmanager
    def _write(self, ctx: CallContext, resolved: ResolvedModel) -> Iterator[None]:
        """The write's transaction; a unique/foreign-key violation the checks could not
        foresee (a concurrent write) becomes 409, rolled back with everything else."""
        try:
            with self._tenant_transaction(ctx, resolved, write=True):
                yield
        except IntegrityError as exc:
            raise integrity_conflict(resolved.spec, exc) from None
        except DataError:  # validation should have caught it; the database's text names physical tables
            raise InvalidInput("the database rejected a value (out of range or not storable)") from None

    def _fetch(
        self, ctx: CallContext, resolved: ResolvedModel, row_id: object, *, for_update: bool = False
    ) -> Row:
        pk = self._parse_id(resolved, row_id)
        reader = _reader(resolved)
        model, using = resolved.model_class, self._db(resolved)

        def queryset() -> QuerySet[DjangoModel]:
            return self.scoped_queryset(ctx, resolved).filter(pk=pk)

        if for_update and connections[using].features.has_select_for_update:
            locked = next(iter(queryset().select_for_update().values(*reader.names)), None)
            row = None if locked is None else reader(locked)
        else:
            found = _COMPILED.select(
                model,
                using,
                queryset,
                ("get", reader.names),
                reader.names,
                lambda: [*self._scope_params(ctx, resolved), prepared(model, model._meta.pk.name, pk, using)],
                json=reader,
            )
            row = found[0] if found else None
        if row is None:
            raise NotFound(f'{resolved.spec.key} "{row_id}" not found')
        return row

    @staticmethod
    def _parse_id(resolved: ResolvedModel, row_id: object) -> Any:
        try:
            return _key_type(resolved, "id").parse(str(row_id))
        except ValueError:
            raise NotFound(f'{resolved.spec.key} "{row_id}" not found') from None

    def _validate(self, resolved: ResolvedModel, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        spec = resolved.spec
        errors: dict[str, list[str]] = {}
        for key in data:
            column = spec.column(key)
            if column is not None and (column.system or key in SYSTEM_COLUMNS):
                errors[key] = ["is managed by the server and cannot be set"]
            elif column is None:
                errors[key] = [f'unknown field: model "{spec.key}" has no column "{key}"']
        if errors:
            raise InvalidInput(
                f"invalid input: {next(iter(errors))}: {next(iter(errors.values()))[0]}", errors=errors
            )
        serializer = serializer_class(resolved.model_class, spec)(data=data, partial=partial)
        if not serializer.is_valid():
            errors = {k: [str(m) for m in v] for k, v in serializer.errors.items()}
            name, messages = next(iter(errors.items()))
            raise InvalidInput(f"invalid input: {name}: {messages[0]}", errors=errors)
        return dict(serializer.validated_data)

    def _check_unique(
        self, resolved: ResolvedModel, values: dict[str, Any], exclude_id: object = None
    ) -> None:
        """409 naming the column when a unique value is taken (the database constraint is
        table-wide, so the check is too)."""
        for column in resolved.spec.user_columns:
            value = values.get(column.name)
            if column.unique and value is not None:
                clash = self._base(resolved).filter(**{column.name: value})
                if exclude_id is not None:
                    clash = clash.exclude(pk=exclude_id)
                if clash.exists():
                    raise Conflict(
                        f"{column.name}: a {resolved.spec.key} with this value already exists",
                        errors={column.name: ["a row with this value already exists"]},
                    )

    def _check_references(self, ctx: CallContext, resolved: ResolvedModel, values: dict[str, Any]) -> None:
        """A reference must name an existing, visible row of the same tenant."""
        for column in resolved.spec.user_columns:
            value = values.get(column.name)
            if column.references is None or value is None:
                continue
            target = self._referenced(resolved, column.references.table)
            visible = self.scoped_queryset(ctx, target).filter(**{column.references.column: value})
            if not visible.exists():
                raise InvalidInput(
                    f'{column.name}: no {target.spec.key} with {column.references.column} "{value}"',
                    errors={column.name: [f'no {target.spec.key} with {column.references.column} "{value}"']},
                )

    def _referenced(self, resolved: ResolvedModel, table: str) -> ResolvedModel:
        """The model a reference points to: from the same addon build (no registry lookup),
        or the host model registered under that key."""
        if resolved.host is not None:
            return self.registry.resolve(f"{resolved.installation_key}.{table}")
        meta = resolved.model_class._meta
        return ResolvedModel(
            resolved.installation_key,
            resolved.manifest,
            resolved.manifest.model(table),  # type: ignore[arg-type]  # install checked every reference's table
            meta.apps.get_model(meta.app_label, table),
        )

    def _instance_row(self, resolved: ResolvedModel, instance: DjangoModel) -> Row:
        """The created row, from the saved instance (re-read only when the database filled
        a default the instance does not know)."""
        spec = resolved.spec
        raw = {c.name: getattr(instance, c.name) for c in spec.columns}
        if any(isinstance(v, DatabaseDefault) for v in raw.values()):
            reader = _reader(resolved)
            raw = self._base(resolved).filter(pk=instance.pk).values(*reader.names).get()
        return _reader(resolved)(raw)

    def _record(
        self,
        ctx: CallContext,
        resolved: ResolvedModel,
        action: str,
        row_id: object,
        *,
        fields: Iterable[str],
        before: Row | None,
        after: Row | None,
    ) -> None:
        addon, spec = resolved.installation_key, resolved.spec
        self.audit.record(
            f"crud.{action}",
            actor=ctx.actor,
            tenant=ctx.tenant,
            addon=addon,
            target=f"{addon}.{spec.table}:{row_id}",
            decision="allow",
            request_id=ctx.request_id,
            details={"model": spec.key, "id": str(row_id), "fields": list(fields)},
        )
        event = DataEvent(
            addon=addon,
            model=spec.key,
            table=spec.table,
            action=ACTION_EVENTS[action],
            id=str(row_id),
            tenant=ctx.tenant,
            actor_id=user_actor(ctx.user) or None,
            fields=tuple(fields),
            before=before,
            after=after,
            shared=not spec.org_scoped,
        )
        publish_on_commit(data_changed, event, using=self._db(resolved))

    def audit_read(
        self,
        ctx: CallContext,
        resolved: ResolvedModel,
        *,
        row_id: object = None,
        details: dict[str, object] | None = None,
    ) -> None:
        """A `crud.read` audit event, when METACORE['AUDIT_READS'] asks for them."""
        if not metacore_settings.AUDIT_READS:
            return
        addon, table = resolved.installation_key, resolved.spec.table
        target = f"{addon}.{table}" + (f":{row_id}" if row_id else "")
        self.audit.record(
            "crud.read",
            actor=ctx.actor,
            tenant=ctx.tenant,
            addon=addon,
            target=target,
            decision="allow",
            request_id=ctx.request_id,
            details=details or {},
        )
