"""Read statements compiled once per model and query shape.

A get-one and an unfiltered list page ask the same question on every request with other
values: the same columns of the same table, where the tenant column and the primary key
equal something. Building that query through the ORM (filters, lookups, the compiler) cost
more than running it. `CompiledReads` keeps the SQL the ORM compiled for a shape, with the
converters of its columns, and runs it again with the new values through the connection's
cursor (query logging and execute wrappers included). The store's reads get rows JSON-ready
in the same pass: a column whose type reads the database's value straight to JSON
(`ColumnType.json_from_db`: SQLite's uuid hex and UTC datetimes) skips the ORM's converter
and the Python value it builds, the rest go through the converter, then `to_json`.

A statement is kept only if the parameters the ORM compiled are exactly the ones the caller
computes from the same values (each prepared by its field, as an exact lookup does);
otherwise that shape is always built by the ORM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

from django.core.signals import setting_changed
from django.db import connections
from django.db.models import Model, QuerySet

from metacore.schema.types import ColumnType

#: A bound on the shapes kept per model (each sort order is one shape).
SHAPES_PER_MODEL = 64
#: The model class attribute holding its shapes: they go when a registry reload drops the class.
_ATTRIBUTE = "_metacore_compiled_reads"
#: A bound on the counts kept per SQLite connection (one per tenant and table listed).
COUNTS_PER_CONNECTION = 256
_COUNTS_ATTRIBUTE = "_metacore_counts"

Converters = list[tuple[int, list[Callable[..., Any]], Any]]
Convert = Callable[[Any], Any]


class JsonColumns(Protocol):
    """What a caller reading JSON-ready rows passes: each column's type, the `to_json` of the
    columns whose type converts, and how it turns a `.values()` row JSON-ready (for the shapes
    the ORM runs)."""

    @property
    def types(self) -> Mapping[str, ColumnType]: ...

    @property
    def converters(self) -> Sequence[tuple[str, Convert]]: ...

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]: ...


class Statement:
    """One compiled SELECT or COUNT: its SQL and, per column, how a fetched value becomes the
    row's value (the ORM's converters, then the type's `to_json` for JSON-ready rows; or the
    type's direct `json_from_db`)."""

    def __init__(
        self,
        sql: str,
        names: tuple[str, ...] = (),
        converters: Converters | None = None,
        direct: list[tuple[int, Convert]] | None = None,
        to_json: list[tuple[int, Convert]] | None = None,
    ) -> None:
        self.sql = sql
        self.names = names
        self.converters = converters or []
        self.direct = direct or []
        self.to_json = to_json or []

    def rows(self, using: str, params: Sequence[Any], suffix: str = "") -> list[dict[str, Any]]:
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql + suffix, params)
            found = cursor.fetchall()
        names = self.names
        if not (self.converters or self.direct or self.to_json):
            return [dict(zip(names, row, strict=True)) for row in found]
        rows = []
        for raw in found:
            row = list(raw)
            for position, convert in self.direct:
                row[position] = convert(row[position])
            for position, converters, expression in self.converters:
                value = row[position]
                for django_convert in converters:
                    value = django_convert(value, expression, connection)
                row[position] = value
            for position, convert in self.to_json:
                row[position] = convert(row[position])
            rows.append(dict(zip(names, row, strict=True)))
        return rows

    def count(self, using: str, params: Sequence[Any]) -> int:
        """The COUNT's answer. On SQLite, outside a transaction, it is kept per connection and
        given again while the database file is unchanged: `data_version` moves when another
        connection (any process) commits, `schema_version` on any schema change, the
        connection's `total_changes` when it writes itself. Inside a transaction nothing is
        kept or reused: a rollback undoes writes without moving any of the three. Counting is
        the one cost of a list page that grows with the table."""
        connection = connections[using]
        with connection.cursor() as cursor:
            if connection.vendor != "sqlite" or connection.in_atomic_block:
                cursor.execute(self.sql, params)
                return int(cursor.fetchone()[0])
            cursor.execute(_SQLITE_VERSIONS)
            data_version, schema_version = cursor.fetchone()
            version = (data_version, schema_version, connection.connection.total_changes)
            counts, key = _sqlite_counts(connection), (self.sql, tuple(params))
            known = counts.get(key)
            if known is not None and known[0] == version:
                return known[1]
            cursor.execute(self.sql, params)
            total = int(cursor.fetchone()[0])
        if len(counts) >= COUNTS_PER_CONNECTION:
            counts.clear()
        counts[key] = (version, total)
        return total


#: Both change counters of a SQLite database file in one statement.
_SQLITE_VERSIONS = "SELECT (SELECT data_version FROM pragma_data_version()), (SELECT schema_version FROM pragma_schema_version())"
_Counts = dict[tuple[str, tuple[Any, ...]], tuple[tuple[int, int, int], int]]


def _sqlite_counts(connection: Any) -> _Counts:
    """The counts kept for the SQLite connection `connection` has open now (a new one starts
    empty: `data_version` values compare only within one connection)."""
    raw = connection.connection
    kept: tuple[Any, _Counts] | None = connection.__dict__.get(_COUNTS_ATTRIBUTE)
    if kept is None or kept[0] is not raw:
        kept = (raw, {})
        setattr(connection, _COUNTS_ATTRIBUTE, kept)
    return kept[1]


def _select_statement(
    sql: str,
    names: tuple[str, ...],
    selected: Sequence[Any],
    converters: Converters,
    using: str,
    json: JsonColumns | None,
) -> Statement:
    """The statement for `names` (`selected`: their expressions); with `json`, its rows come
    out JSON-ready, each column through its type's direct converter when the database has one
    and the field converts nothing itself (`from_db_value`)."""
    if json is None:
        return Statement(sql, names, converters)
    by_position = {position: (functions, expression) for position, functions, expression in converters}
    connection = connections[using]
    kept: Converters = []
    direct: list[tuple[int, Convert]] = []
    to_json: list[tuple[int, Convert]] = []
    to_json_of = dict(json.converters)
    for position, name in enumerate(names):
        straight = json.types[name].json_from_db(connection)
        if straight is not None and not hasattr(selected[position].output_field, "from_db_value"):
            direct.append((position, straight))
            continue
        if position in by_position:
            kept.append((position, *by_position[position]))
        if name in to_json_of:
            to_json.append((position, to_json_of[name]))
    return Statement(sql, names, kept, direct, to_json)


def prepared(model: type[Model], name: str, value: Any, using: str) -> Any:
    """`value` as an exact lookup on `model.name` sends it to the database."""
    field = model._meta.get_field(name)
    return field.get_db_prep_value(field.get_prep_value(value), connections[using], prepared=True)  # type: ignore[union-attr]


#: Moves when a setting the statements' converters were chosen under changes (tests override
#: them): statements compiled before are not used again.
_settings_generation = 0


def _settings_changed(setting: str, **kwargs: Any) -> None:
    global _settings_generation
    if setting in ("USE_TZ", "TIME_ZONE", "DATABASES"):
        _settings_generation += 1


setting_changed.connect(_settings_changed, dispatch_uid="metacore.store.compiled")


class CompiledReads:
    """Per model class and shape: the compiled statement, or None when the shape is left to
    the ORM (its compiled parameters were not the ones computed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @staticmethod
    def _shapes(model: type[Model]) -> dict[Hashable, Statement | None]:
        shapes: dict[Hashable, Statement | None] | None = model.__dict__.get(_ATTRIBUTE)
        if shapes is None:
            shapes = {}
            setattr(model, _ATTRIBUTE, shapes)
        return shapes

    def _keep(self, model: type[Model], key: Hashable, statement: Statement | None) -> None:
        with self._lock:
            shapes = self._shapes(model)
            if len(shapes) >= SHAPES_PER_MODEL:
                del shapes[next(iter(shapes))]
            shapes[key] = statement

    def select(
        self,
        model: type[Model],
        using: str,
        queryset: Callable[[], QuerySet[Any]],
        shape: Hashable,
        names: tuple[str, ...],
        params: Callable[[], Sequence[Any]],
        low: int = 0,
        high: int | None = None,
        json: JsonColumns | None = None,
    ) -> list[dict[str, Any]]:
        """`list(queryset().values(*names)[low:high])`, each row through `json` when given;
        `queryset()` (rows of `model` on `using`) is only built while the shape is not
        compiled, or not compilable."""
        shapes, key = self._shapes(model), (using, shape, json is not None, _settings_generation)
        if key not in shapes:
            compiler = queryset().values(*names).query.get_compiler(using=using)
            sql, compiled = compiler.as_sql()
            statement = None
            if list(compiled) == list(params()):
                selected = [column for column, _, _ in compiler.select[: compiler.col_count]]
                converters = [
                    (position, functions, expression)
                    for position, (functions, expression) in compiler.get_converters(selected).items()
                ]
                statement = _select_statement(sql, names, selected, converters, using, json)
            self._keep(model, key, statement)
        statement = shapes.get(key)
        if statement is None:
            found = queryset().values(*names)[low:high]
            return [json(row) for row in found] if json is not None else list(found)
        suffix = connections[using].ops.limit_offset_sql(low, high) if (low or high is not None) else ""
        return statement.rows(using, params(), f" {suffix}" if suffix else "")

    def count(
        self,
        model: type[Model],
        using: str,
        queryset: Callable[[], QuerySet[Any]],
        shape: Hashable,
        params: Callable[[], Sequence[Any]],
    ) -> int:
        """`queryset().count()`; the statement kept is the one the ORM executed for it."""
        shapes, key = self._shapes(model), (using, shape)
        if key in shapes:
            statement = shapes[key]
            return queryset().count() if statement is None else statement.count(using, params())
        executed: list[tuple[str, tuple[Any, ...]]] = []

        def capture(execute: Any, sql: str, sql_params: Any, many: bool, context: Any) -> Any:
            executed.append((sql, tuple(sql_params or ())))
            return execute(sql, sql_params, many, context)

        with connections[using].execute_wrapper(capture):
            total = queryset().count()
        single = len(executed) == 1 and list(executed[0][1]) == list(params())
        self._keep(model, key, Statement(executed[0][0]) if single else None)
        return total
