"""Metadata, options and search over installed addon models (framework-agnostic).

Every call takes the caller (`user`) and answers only what `<addon>.<table>.read` allows,
scoped to the caller's tenant and blind to soft-deleted rows. Errors are `metacore.errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.db.models import Model as DjangoModel
from django.db.models import Q, QuerySet

from metacore import errors
from metacore.conf import metacore_settings
from metacore.context import CallContext
from metacore.metadata import derive, i18n
from metacore.permissions.naming import model_permission
from metacore.schema.types import get_type
from metacore.store.query import MAX_OFFSET, parse_value

if TYPE_CHECKING:
    from django.http import HttpRequest

    from metacore.manifest.model import Column, Model
    from metacore.permissions.service import PermissionService, User
    from metacore.schema.registry import ModelRegistry, ResolvedModel
    from metacore.store.service import StoreService

DEFAULT_OPTIONS_LIMIT = 50
MAX_OPTIONS_LIMIT = 200
DEFAULT_SEARCH_LIMIT = 20
OPTIONS_PARAMS = ("field", "q", "limit", "offset", "ids", "filter_value")
SEARCH_PARAMS = ("q", "search", "limit")


class MetadataService:
    def __init__(self, registry: ModelRegistry, permissions: PermissionService, store: StoreService) -> None:
        self.registry = registry
        self.permissions = permissions
        self.store = store
        # Derived metadata per runtime class: a class is rebuilt on every upgrade, so an
        # entry never outlives the schema it describes.
        self._derived: WeakKeyDictionary[type, tuple[dict[str, Any], dict[str, Any]]] = WeakKeyDictionary()

    # -- metadata -----------------------------------------------------------------------
    def version(self) -> str:
        """A token that changes on every install, upgrade, uninstall, enable or disable, for
        any organization (the registry's revision, and what it serves)."""
        registry = self.registry
        rows = [(a.key, a.version, a.revision, a.state) for a in registry.installed_addons()]
        digest = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()[:12]
        return f"{registry.revision}.{digest}"

    def resolve_readable(
        self, user: User | None, ref: str, request: HttpRequest | None = None
    ) -> ResolvedModel:
        """The model named `ref` among the addons enabled for the caller's organization, once
        the caller may read it (401/403/404/409 otherwise)."""
        self._require_user(user)
        resolved = self.registry.resolve(ref, organization=self._tenant(user, request))
        self.permissions.require(user, self.read_permission(resolved))
        return resolved

    @staticmethod
    def _tenant(user: User | None, request: HttpRequest | None) -> str | None:
        tenant = metacore_settings.TENANT_RESOLVER(user, request)
        return str(tenant) if tenant else None

    def table(
        self, user: User | None, ref: str, language: str | None = None, request: HttpRequest | None = None
    ) -> dict[str, Any]:
        resolved = self.resolve_readable(user, ref, request)
        return self._for_caller(resolved, self._metadata(resolved)[0], user, language, request)

    def modal(
        self, user: User | None, ref: str, language: str | None = None, request: HttpRequest | None = None
    ) -> dict[str, Any]:
        resolved = self.resolve_readable(user, ref, request)
        return self._for_caller(resolved, self._metadata(resolved)[1], user, language, request)

    @staticmethod
    def _for_caller(
        resolved: ResolvedModel,
        meta: dict[str, Any],
        user: User | None,
        language: str | None,
        request: HttpRequest | None,
    ) -> dict[str, Any]:
        """The cached metadata in the caller's language, with its organization's validators."""
        meta = i18n.localize(meta, i18n.texts_for(resolved.manifest, language))
        resolver = metacore_settings.ORG_CONFIG_RESOLVER
        if resolver is None:
            return meta
        tenant = metacore_settings.TENANT_RESOLVER(user, request)
        if tenant is None:
            return meta
        return i18n.resolve_org_validators(meta, lambda key: resolver(str(tenant), key))

    def all(
        self, user: User | None, language: str | None = None, request: HttpRequest | None = None
    ) -> dict[str, Any]:
        """Every model the caller may read, keyed by model key (qualified `<addon>.<key>`
        when two addons share the key), plus the `version` token."""
        self._require_user(user)
        models = self.registry.served_models(organization=self._tenant(user, request))
        counts = Counter(m.spec.key.lower() for m in models)
        tables: dict[str, dict[str, Any]] = {}
        modals: dict[str, dict[str, Any]] = {}
        for m in models:
            if self.permissions.has(user, self.read_permission(m)):
                name = m.spec.key if counts[m.spec.key.lower()] == 1 else m.qualified_name
                tables[name], modals[name] = (
                    self._for_caller(m, meta, user, language, None) for meta in self._metadata(m)
                )
        return {"version": self.version(), "tables": tables, "modals": modals}

    def _metadata(self, resolved: ResolvedModel) -> tuple[dict[str, Any], dict[str, Any]]:
        """(TableMetadata, ModalMetadata) of a model, derived once per runtime class."""
        cached = self._derived.get(resolved.model_class)
        if cached is None:
            cached = self._derived[resolved.model_class] = (
                derive.table_metadata(resolved.manifest, resolved.spec),
                derive.modal_metadata(resolved.manifest, resolved.spec),
            )
        return cached

    # -- options and search -------------------------------------------------------------
    def options(
        self, user: User | None, ref: str, params: Mapping[str, str], request: HttpRequest | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """`(type, options)` for one field of a model, upstream `Service.Options` semantics:
        `id` (the default) lists the model's own rows, a reference column lists the
        referenced model's rows, a column with static `options` in the manifest's `table`
        block lists those, any other column lists its distinct values."""
        self._check_params(params, OPTIONS_PARAMS)
        resolved = self.resolve_readable(user, ref, request)
        spec = resolved.spec
        field = (params.get("field") or "id").strip()
        column = spec.column(field)
        if column is None or column.name in derive.INTERNAL:
            raise errors.InvalidInput(
                f'unknown field "{field}"', errors={"field": [f'model "{spec.key}" has no column "{field}"']}
            )
        limit = self._int(params, "limit", DEFAULT_OPTIONS_LIMIT, minimum=1, maximum=MAX_OPTIONS_LIMIT)
        offset = self._int(params, "offset", 0, minimum=0)
        if offset > MAX_OFFSET:
            raise errors.InvalidInput("offset: is too large", errors={"offset": ["is too large"]})
        q = (params.get("q") or "").strip()

        static = self._static_options(spec, field)
        if static is not None:
            if q:
                static = [o for o in static if q.lower() in str(o["label"]).lower()]
            return "static", static[offset : offset + limit]

        if column.references is not None or column.name == "id":
            source = resolved
            if column.references is not None:
                source = self.registry.resolve(
                    f"{resolved.installation_key}.{column.references.table}",
                    organization=self._tenant(user, request),
                )
                self.permissions.require(user, self.read_permission(source))
            label = _column(source.spec, derive.label_column(source.spec))
            with self._visible_rows(source, user, request) as rows:
                rows = self._scoped_by(rows, source.spec, spec, field, params)
                if q:
                    rows = rows.filter(self._match(label, q, "q"))
                if params.get("ids"):
                    rows = rows.filter(id__in=self._ids(source, params["ids"]))
                return "dynamic", self._project(source, rows, offset, limit)

        col_type = get_type(column.type)
        with self._visible_rows(resolved, user, request) as rows:
            rows = self._scoped_by(
                rows.exclude(**{f"{column.name}__isnull": True}), spec, spec, field, params
            )
            if q:
                rows = rows.filter(self._match(column, q, "q"))
            values = list(
                rows.order_by(column.name)
                .values_list(column.name, flat=True)
                .distinct()[offset : offset + limit]
            )
        return "dynamic", [self._option(col_type.to_json(v), col_type.to_json(v)) for v in values]

    def search(
        self, user: User | None, ref: str, params: Mapping[str, str], request: HttpRequest | None = None
    ) -> list[dict[str, Any]]:
        """Rows whose search columns contain `q` (or `search`), as `{id, value, label, name}`."""
        self._check_params(params, SEARCH_PARAMS)
        resolved = self.resolve_readable(user, ref, request)
        limit = self._int(params, "limit", DEFAULT_SEARCH_LIMIT, minimum=1, maximum=MAX_OPTIONS_LIMIT)
        q = (params.get("q") or params.get("search") or "").strip()
        columns = derive.search_columns(resolved.spec)
        if q and not columns:
            raise errors.InvalidInput(
                "invalid input", errors={"q": [f'model "{resolved.spec.key}" has no searchable columns']}
            )
        with self._visible_rows(resolved, user, request) as rows:
            if q:
                rows = rows.filter(reduce(or_, (Q(**{f"{name}__icontains": q}) for name in columns)))
            return self._project(resolved, rows, 0, limit)

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def read_permission(resolved: ResolvedModel) -> str:
        return model_permission(resolved.installation_key, resolved.spec.table, "read")

    @contextlib.contextmanager
    def _visible_rows(
        self, resolved: ResolvedModel, user: User | None, request: HttpRequest | None
    ) -> Iterator[QuerySet[DjangoModel]]:
        """The store's view of the model for this caller (own tenant, no soft-deleted rows),
        inside the store's tenant transaction (PostgreSQL row-level security)."""
        store = self.store
        ctx = CallContext.for_user(user, request)
        with store.tenant_transaction(ctx, resolved):
            yield store.scoped_queryset(ctx, resolved)
        store.audit_read(ctx, resolved, details={"via": "options/search"})

    def _project(
        self, resolved: ResolvedModel, rows: QuerySet[DjangoModel], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """`{id, value, label, name}` per row, ordered by the label column."""
        label = derive.label_column(resolved.spec)
        id_type = get_type(_column(resolved.spec, "id").type)
        label_type = get_type(_column(resolved.spec, label).type)
        out = []
        for pk, text in rows.order_by(label, "id").values_list("id", label)[offset : offset + limit]:
            value = id_type.to_json(pk)
            out.append(self._option(value, label_type.to_json(text) if text is not None else value))
        return out

    @staticmethod
    def _option(value: object, label: object) -> dict[str, Any]:
        return {"id": value, "value": value, "label": label, "name": label}

    @staticmethod
    def _ids(resolved: ResolvedModel, raw: str) -> list[Any]:
        id_column = _column(resolved.spec, "id")
        try:
            return [parse_value(id_column, part.strip()) for part in raw.split(",") if part.strip()]
        except ValueError as exc:
            raise errors.InvalidInput("invalid input", errors={"ids": [str(exc)]}) from None

    @staticmethod
    def _match(column: Column, q: str, param: str) -> Q:
        """`q` against one column: contains for text, an exact parsed value otherwise."""
        col_type = get_type(column.type)
        if col_type.text_like:
            return Q(**{f"{column.name}__icontains": q})
        try:
            return Q(**{column.name: parse_value(column, q)})
        except ValueError as exc:
            raise errors.InvalidInput("invalid input", errors={param: [str(exc)]}) from None

    def _scoped_by(
        self,
        rows: QuerySet[DjangoModel],
        source: Model,
        spec: Model,
        field: str,
        params: Mapping[str, str],
    ) -> QuerySet[DjangoModel]:
        """Dependent dropdowns (upstream `FilterBy`): `filter_value` compared with the column the
        field's entry in the manifest's `table.columns[]` or `modal.fields[]` names as
        `filter_by` (a column of the model the options come from). Without one it is ignored,
        as upstream does."""
        value = (params.get("filter_value") or "").strip()
        if not value:
            return rows
        entries = [
            *((spec.table_meta or {}).get("columns") or ()),
            *((spec.modal_meta or {}).get("fields") or ()),
        ]
        name = next(
            (
                e.get("filter_by") or e.get("filterBy")
                for e in entries
                if isinstance(e, dict) and e.get("key") == field and (e.get("filter_by") or e.get("filterBy"))
            ),
            None,
        )
        column = source.column(name) if name else None
        if column is None:
            return rows
        return rows.filter(
            self._match(column, value, "filter_value")
            if not get_type(column.type).text_like
            else Q(**{column.name: value})
        )

    @staticmethod
    def _static_options(spec: Model, field: str) -> list[dict[str, Any]] | None:
        for column in (spec.table_meta or {}).get("columns") or ():
            if isinstance(column, dict) and column.get("key") == field and column.get("options"):
                return [
                    {
                        **MetadataService._option(o.get("value"), o.get("label", o.get("value"))),
                        **{k: o[k] for k in ("icon", "color") if o.get(k)},
                    }
                    for o in column["options"]
                    if isinstance(o, dict)
                ]
        return None

    @staticmethod
    def _check_params(params: Mapping[str, str], allowed: Iterable[str]) -> None:
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise errors.InvalidInput(
                f"unknown parameter: {', '.join(unknown)}",
                errors={name: [f"unknown parameter (allowed: {', '.join(allowed)})"] for name in unknown},
            )
        with_nul = sorted(name for name in params if "\x00" in str(params.get(name)))
        if with_nul:
            raise errors.InvalidInput(
                f"{with_nul[0]}: must not contain NUL characters",
                errors={name: ["must not contain NUL characters"] for name in with_nul},
            )

    @staticmethod
    def _int(
        params: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
    ) -> int:
        raw = params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise errors.InvalidInput(
                f"{name}: not an integer", errors={name: [f"{raw!r} is not an integer"]}
            ) from None
        if value < minimum:
            raise errors.InvalidInput(
                f"{name}: must be at least {minimum}", errors={name: [f"must be at least {minimum}"]}
            )
        return min(value, maximum) if maximum is not None else value

    @staticmethod
    def _require_user(user: User | None) -> None:
        if user is None or not getattr(user, "is_authenticated", False):
            raise errors.NotAuthenticated("Authentication credentials were not provided.")


def _column(spec: Model, name: str) -> Column:
    """A column every such model has (`id`, the label column `derive.label_column` picks)."""
    column = spec.column(name)
    if column is None:
        raise LookupError(f'model "{spec.key}" has no column "{name}"')
    return column
