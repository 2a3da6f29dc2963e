"""The list query language: query-string parameters -> a validated `ListQuery`.

    page=2&per_page=50&sortBy=-priority,title&search=printer&f_status=in:open,pending
    cursor=&per_page=50&count=none          (keyset pages: meta.next_cursor -> cursor=<it>)

It accepts every spelling the official SDK's table and filter components send, with the
upstream kernel's meaning: operators in any case (`IN:a,b`, `RANGE:1,9`, `ILIKE:x`,
`NOT_IN:`, `NULL:`), an empty filter (`f_x=`, `f_x=eq:`, `f_x=IN:`) is no filter, a
date range `f_created_at=2024-01-01_2024-01-31` covers both whole days, `search_columns`
narrows `search`, and an unknown `op:` prefix is taken literally as an `eq` value (so
`f_url=http://x` matches the URL) unless that value does not fit the column.

Every parameter is checked against the model's manifest before any SQL is built; a bad one
raises `InvalidInput` naming it (`{"f_status": ['unknown operator "foo"']}`). Filters
become ORM lookups (never raw SQL), so values are always bound parameters and LIKE
wildcards in user input are escaped by Django.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import reduce
from operator import and_, or_
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections
from django.db.models import Model, Q, QuerySet

from metacore.conf import metacore_settings
from metacore.errors import InvalidInput
from metacore.schema.types import ColumnType, get_type
from metacore.schema.types.numeric import DecimalType

if TYPE_CHECKING:
    from metacore.manifest.model import Column
    from metacore.manifest.model import Model as Spec

FILTER_PREFIX = "f_"
#: How `meta.total` is computed: COUNT(*), the planner's estimate (PostgreSQL), or not at all.
COUNT_MODES = ("exact", "estimated", "none")
_M = TypeVar("_M", bound=Model)
#: A QueryDict, or a plain dict of one value or a list of values per name.
QueryParams = Mapping[str, str | list[str] | tuple[str, ...]]
Errors = dict[str, list[str]]  # messages by query parameter
_OPERATOR_LIKE = re.compile(r"[A-Za-z_]+")
_DAY_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})")
MAX_OFFSET = 2**62  # an OFFSET both databases accept as a 64-bit integer

#: operator -> the Django lookup the column's type must support for it.
OPERATORS = {
    "eq": "exact",
    "ne": "exact",
    "in": "in",
    "nin": "in",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "range": "gte",
    "not_in": "in",
    "null": "isnull",
    "not_null": "isnull",
    "ilike": "icontains",
    "like": "contains",
    "contains": "icontains",
    "startswith": "istartswith",
    "endswith": "iendswith",
    "isnull": "isnull",
}


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per_page: int = 20
    ordering: tuple[str, ...] = ()
    where: Q = field(default_factory=Q)
    count: str = "exact"
    keyset: bool = False  # `cursor` given: rows after `after`, no page numbers
    after: Q | None = None  # the rows past the cursor's row, in `ordering`

    @property
    def offset(self) -> int:
        return 0 if self.keyset else (self.page - 1) * self.per_page

    def apply(self, queryset: QuerySet[_M]) -> QuerySet[_M]:
        """Filters, search and ordering (no slicing: the caller counts first)."""
        return queryset.filter(self.where).order_by(*self.ordering)

    def page_after(self, queryset: QuerySet[_M]) -> QuerySet[_M]:
        """`apply`'s rows past the cursor (all of them without one)."""
        return queryset.filter(self.after) if self.after is not None else queryset

    def cursor_after(self, row: dict[str, Any]) -> str:
        """The opaque cursor of the rows after `row` (a JSON-ready row of this query)."""
        keys = [o.lstrip("-") for o in self.ordering]
        text = json.dumps({"o": list(self.ordering), "v": [row[k] for k in keys]}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _getlist(params: QueryParams, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        values: list[str] = params.getlist(name)
        return values
    value = params[name]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _last(params: QueryParams, name: str) -> str | None:
    values = _getlist(params, name) if name in params else []
    return values[-1] if values else None


def parse_list_query(model: Spec, params: QueryParams, *, using: str = "default") -> ListQuery:
    """`model` is the manifest Model; `params` a QueryDict or a plain dict."""
    errors: Errors = {}
    page = _positive_int(params, "page", 1, errors)
    per_page = min(
        _positive_int(params, "per_page", metacore_settings.DEFAULT_PER_PAGE, errors),
        metacore_settings.MAX_PER_PAGE,
    )
    if (page - 1) * per_page > MAX_OFFSET:
        errors.setdefault("page", []).append("is too large")
    ordering = _ordering(model, params, errors)
    count = _last(params, "count") or "exact"
    if count not in COUNT_MODES:
        errors.setdefault("count", []).append(f"{count!r} is not one of {', '.join(COUNT_MODES)}")
    keyset = "cursor" in params
    after: Q | None = None
    if keyset:
        if _last(params, "page") not in (None, ""):
            errors.setdefault("cursor", []).append("give page or cursor, not both")
        after = _keyset(model, ordering, _last(params, "cursor") or "", errors)
    conditions: list[Q] = []
    rejected: set[str] = set()
    for name in params:
        if any("\x00" in value for value in _getlist(params, name) if isinstance(value, str)):
            errors.setdefault(name, []).append("must not contain NUL characters")
            rejected.add(name)
    search = _last(params, "search")
    if search is not None and search.strip() and "search" not in rejected:
        conditions.append(_search(model, search.strip(), _last(params, "search_columns"), errors))
    for name in params:
        if name.startswith(FILTER_PREFIX) and name not in rejected:
            for raw in _getlist(params, name):
                condition = _filter(model, name, raw, errors, using)
                if condition is not None:
                    conditions.append(condition)
    if errors:
        raise InvalidInput(_message(errors), errors=errors)
    return ListQuery(
        page=page,
        per_page=per_page,
        ordering=ordering,
        where=reduce(and_, conditions, Q()),
        count=count,
        keyset=keyset,
        after=after,
    )


def _keyset(model: Spec, ordering: tuple[str, ...], cursor: str, errors: Errors) -> Q | None:
    """The rows after a cursor: (a > x) or (a = x and b > y) or ..., each comparison in its
    key's direction, and with it the redundant (a >= x): the bound the database starts
    its index scan from (to PostgreSQL the OR alone is a filter over every earlier row,
    so page 10,000 cost as much as with OFFSET)."""
    nullable = [o.lstrip("-") for o in ordering if not _never_null(model, o.lstrip("-"))]
    if nullable:
        errors.setdefault("cursor", []).append(
            f"cursor pages need sort columns that are never null; {', '.join(nullable)} may be"
        )
        return None
    if not cursor:
        return None  # the first page
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values = decoded["v"]
        if decoded["o"] != list(ordering) or len(values) != len(ordering):
            errors.setdefault("cursor", []).append("was made for another sortBy/order")
            return None
        parsed = []
        for key, value in zip(ordering, values, strict=True):
            column = model.column(key.lstrip("-"))
            if column is None:
                raise KeyError(key)
            parsed.append(parse_value(column, json.dumps(value) if isinstance(value, bool) else str(value)))
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error):
        errors.setdefault("cursor", []).append("is not a cursor this API gave")
        return None
    branches = []
    for i, key in enumerate(ordering):
        name = key.lstrip("-")
        equal = {ordering[j].lstrip("-"): parsed[j] for j in range(i)}
        branches.append(Q(**equal, **{f"{name}__{'lt' if key.startswith('-') else 'gt'}": parsed[i]}))
    first = ordering[0]
    start = Q(**{f"{first.lstrip('-')}__{'lte' if first.startswith('-') else 'gte'}": parsed[0]})
    return start & reduce(or_, branches)


def _never_null(model: Spec, name: str) -> bool:
    column = model.column(name)
    return name == "id" or (column is not None and (column.required or column.primary_key))


def _message(errors: Errors) -> str:
    name, messages = next(iter(errors.items()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid query parameter {name}: {messages[0]}{more}"


def _positive_int(params: QueryParams, name: str, default: int, errors: Errors) -> int:
    raw = _last(params, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors.setdefault(name, []).append(f"{raw!r} is not an integer")
        return default
    if value < 1:
        errors.setdefault(name, []).append("must be 1 or more")
        return default
    return value


def _ordering(model: Spec, params: QueryParams, errors: Errors) -> tuple[str, ...]:
    keys = [k.strip() for k in (_last(params, "sortBy") or "").split(",") if k.strip()]
    orders = [o.strip().lower() for o in (_last(params, "order") or "").split(",") if o.strip()]
    bad_orders = [o for o in orders if o not in ("asc", "desc")]
    if bad_orders:
        errors.setdefault("order", []).append(f'{bad_orders[0]!r} is not "asc" or "desc"')
    if orders and len(orders) not in (1, len(keys)):
        errors.setdefault("order", []).append("give one order, or one per sortBy key")
    ordering: list[str] = []
    for position, key in enumerate(keys):
        descending = key.startswith("-")
        name = key.lstrip("-")
        column = model.column(name)
        if column is None:
            errors.setdefault("sortBy", []).append(f'unknown column "{name}"')
            continue
        if not get_type(column.type).sortable:
            errors.setdefault("sortBy", []).append(
                f'column "{name}" ({get_type(column.type).name}) cannot be sorted'
            )
            continue
        if not descending and orders:
            descending = orders[position if len(orders) > 1 else 0] == "desc"
        ordering.append(f"-{name}" if descending else name)
    if not keys and model.column("created_at") is not None:
        ordering.append("-created_at")
    # A unique tie-breaker keeps pages stable when sort keys repeat.
    if "id" not in {o.lstrip("-") for o in ordering}:
        ordering.append("id")
    return tuple(ordering)


def search_columns(model: Spec) -> list[Column]:
    """Columns `search` looks in: those marked searchable, else every text-like user column."""
    marked = [c for c in model.columns if c.searchable]
    return marked or [c for c in model.user_columns if get_type(c.type).text_like]


def _search(model: Spec, term: str, only: str | None, errors: Errors) -> Q:
    columns = search_columns(model)
    if only:
        # The SDK's table sends the metadata's searchable keys; narrow to those.
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if model.column(n) is None]
        if unknown:
            errors.setdefault("search_columns", []).append(f'unknown column "{unknown[0]}"')
            return Q()
        columns = [c for c in columns if c.name in names] or columns
    if not columns:
        errors.setdefault("search", []).append(f'model "{model.key}" has no searchable columns')
        return Q()
    return reduce(or_, (Q(**{f"{c.name}__icontains": term}) for c in columns))


def split_operator(raw: str) -> tuple[str | None, str]:
    """`"gt:5"`, `"GT:5"` -> ("gt", "5"); a bare value is `eq`. A prefix that looks like an
    operator name but is not one comes back (lower-cased) as is, so the caller can decide."""
    head, sep, rest = raw.partition(":")
    if sep and _OPERATOR_LIKE.fullmatch(head):
        return head.lower(), rest
    if not sep and raw in ("isnull",):
        return "isnull", "true"
    return "eq", raw


def _filter(model: Spec, name: str, raw: str, errors: Errors, using: str) -> Q | None:
    column_name = name[len(FILTER_PREFIX) :]
    column = model.column(column_name)
    if column is None:
        errors.setdefault(name, []).append(f'unknown column "{column_name}"')
        return None
    ctype = get_type(column.type)
    raw = raw.strip()
    op, value = split_operator(raw)
    if op not in OPERATORS:
        # Upstream takes an unknown prefix literally; report the operator when the literal
        # does not fit the column either.
        if "exact" in ctype.lookups:
            with contextlib.suppress(ValueError):
                return Q(**{column.name: parse_value(column, raw)})
        errors.setdefault(name, []).append(f'unknown operator "{op}"')
        return None
    value = value.strip()
    if value == "" and op not in ("isnull", "null", "not_null"):
        return None  # upstream: an empty filter is no filter
    if op == "eq" and ctype.name in ("date", "datetime") and (days := _DAY_RANGE.fullmatch(value)):
        op, value = "range", f"{days[1]}|{days[2]}"
    lookup = OPERATORS[op]
    json_containment = ctype.name == "json" and op == "contains"
    if json_containment:
        # JSON containment (`{"a": 1}` inside the value): only where the database has it.
        lookup = "contains"
        if not connections[using].features.supports_json_field_contains:
            errors.setdefault(name, []).append("JSON containment is not supported on this database")
            return None
    elif lookup not in ctype.lookups or (op == "range" and "lte" not in ctype.lookups):
        errors.setdefault(name, []).append(
            f'operator "{op}" does not apply to {ctype.name} column "{column_name}"'
        )
        return None
    try:
        return _condition(column, op, lookup, ctype, value)
    except ValueError as exc:
        errors.setdefault(name, []).append(str(exc))
        return None


def parse_value(column: Column, raw: str) -> Any:  # what the column type's parse gives
    """A filter value for `column` from query-string text: the type's `parse`, plus the
    checks the database would otherwise fail on (or silently match nothing) at query time:
    NUL characters, datetimes that overflow when moved to UTC, decimals beyond the column's
    precision. Raises ValueError naming the problem."""
    ctype = get_type(column.type)
    if "\x00" in raw:
        raise ValueError("must not contain NUL characters")
    value = ctype.parse(raw)
    if isinstance(value, datetime):
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{raw!r} is out of range") from None
    if isinstance(value, Decimal) and isinstance(
        ctype, DecimalType
    ):  # a host's type may parse to Decimal too
        precision, scale = ctype.precision_scale(column)
        if abs(value) >= Decimal(10) ** (precision - scale):
            raise ValueError(f"{raw!r} is out of range for {ctype.describe(column)}")
    if ctype.name == "json" and "\\u0000" in json.dumps(value):
        raise ValueError("JSON values must not contain NUL characters")
    return value


def _upper_bound(column: Column, ctype: ColumnType, raw: str) -> Q:
    """`<= raw`; a bare day as the upper bound of a date-time column includes that whole day."""
    if ctype.name == "datetime" and _DAY.match(raw.strip()):
        return Q(**{f"{column.name}__lt": parse_value(column, raw) + timedelta(days=1)})
    return Q(**{f"{column.name}__lte": parse_value(column, raw)})


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _condition(column: Column, op: str, lookup: str, ctype: ColumnType, value: str) -> Q | None:
    col = column.name
    if op in ("isnull", "null", "not_null"):
        null = get_type("bool").parse(value or "true") if op == "isnull" else op == "null"
        return Q(**{f"{col}__isnull": null})
    if op in ("in", "nin", "not_in"):
        items = [parse_value(column, v.strip()) for v in value.split(",") if v.strip() != ""]
        if not items:
            return None
        q = Q(**{f"{col}__in": items})
        return q if op == "in" else ~q
    if op == "range":
        separator = "|" if "|" in value else ","
        parts = [part.strip() for part in value.split(separator)]
        if len(parts) > 2:
            raise ValueError('range needs "min|max" or "min,max" (either side may be empty)')
        low, high = (parts + [""])[:2]
        q = Q()
        if low != "":
            q &= Q(**{f"{col}__gte": parse_value(column, low)})
        if high != "":
            q &= _upper_bound(column, ctype, high)
        return q or None
    if op == "lte":
        return _upper_bound(column, ctype, value)
    if lookup in ("icontains", "contains", "istartswith", "iendswith") and ctype.text_like:
        if value == "":
            raise ValueError(f'operator "{op}" needs a value')
        return Q(**{f"{col}__{lookup}": value})
    q = Q(**{f"{col}__{lookup}": parse_value(column, value)})
    return ~q if op == "ne" else q
