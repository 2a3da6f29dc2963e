"""DDL for addon tables through Django's schema editor, plus read-back by introspection.

The operations are small and model-class based (create/drop a table, add/alter/remove a
column, add/remove an index or constraint) so the installer and an upgrade plan apply the
same steps. They never open a transaction: the caller's `transaction.atomic()` holds the
whole install, so a failure anywhere rolls the tables back too (both databases have
transactional DDL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.utils import CursorWrapper
from django.db.models import Index, Model
from django.db.models.constraints import BaseConstraint

from metacore.schema.naming import check_addon_key, physical_table, schema_name


def connection_for(using: str = DEFAULT_DB_ALIAS) -> BaseDatabaseWrapper:
    return connections[using]


@contextmanager
def schema_editor(
    using: str = DEFAULT_DB_ALIAS, collect_sql: bool = False
) -> Iterator[BaseDatabaseSchemaEditor]:
    """Django's schema editor, usable inside the caller's transaction on SQLite too.

    Django's SQLite editor insists on switching foreign-key checks off, which SQLite cannot
    do inside a transaction. Creating and dropping whole tables does not need that: the
    foreign keys Django declares are DEFERRABLE INITIALLY DEFERRED and checked at commit.
    """
    connection = connection_for(using)
    if connection.vendor == "sqlite" and connection.in_atomic_block:
        editor = _sqlite_in_transaction_editor(connection, collect_sql)
    else:
        editor = connection.schema_editor(atomic=False, collect_sql=collect_sql)
    with editor:
        yield editor


def _sqlite_in_transaction_editor(
    connection: BaseDatabaseWrapper, collect_sql: bool = False
) -> BaseDatabaseSchemaEditor:
    editor_class = connection.SchemaEditorClass
    in_tx = type(
        "InTransactionSQLiteSchemaEditor",
        (editor_class,),
        {"__enter__": BaseDatabaseSchemaEditor.__enter__, "__exit__": BaseDatabaseSchemaEditor.__exit__},
    )
    editor: BaseDatabaseSchemaEditor = in_tx(connection, atomic=False, collect_sql=collect_sql)
    return editor


# -- schema (PostgreSQL namespace of an addon) --------------------------------------------


def ensure_schema(addon_key: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """`CREATE SCHEMA IF NOT EXISTS addon_<key>` on PostgreSQL; nothing on SQLite."""
    connection = connection_for(using)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE SCHEMA IF NOT EXISTS {connection.ops.quote_name(schema_name(check_addon_key(addon_key)))}"
            )


def drop_schema(addon_key: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the addon's PostgreSQL schema and whatever its SQL migrations put in it."""
    connection = connection_for(using)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(schema_name(check_addon_key(addon_key)))} CASCADE"
            )


# -- tables -------------------------------------------------------------------------------


def create_tables(editor: BaseDatabaseSchemaEditor, model_classes: Iterable[type[Model]]) -> None:
    """CREATE TABLE (columns, constraints, indexes) for each class; foreign keys are
    added at the editor's exit, so the order of the classes does not matter."""
    for model_class in model_classes:
        editor.create_model(model_class)


def drop_tables(editor: BaseDatabaseSchemaEditor, model_classes: Iterable[type[Model]]) -> None:
    """DROP TABLE for each class. On PostgreSQL, pending deferred foreign-key checks of
    this transaction are run first (a table with pending trigger events cannot be dropped)."""
    if editor.connection.vendor == "postgresql":
        editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for model_class in model_classes:
        editor.delete_model(model_class)


def drop_table(editor: BaseDatabaseSchemaEditor, addon_key: str, table: str) -> None:
    """DROP TABLE by name, for an addon table no manifest model describes any more."""
    editor.execute(
        editor.sql_delete_table
        % {"table": editor.quote_name(physical_table(addon_key, table, editor.connection.vendor))}
    )


def add_column(editor: BaseDatabaseSchemaEditor, model_class: type[Model], field_name: str) -> None:
    editor.add_field(model_class, model_class._meta.get_field(field_name))  # type: ignore[arg-type]  # a column is a concrete field


def alter_column(
    editor: BaseDatabaseSchemaEditor,
    old_model: type[Model],
    new_model: type[Model],
    old_name: str,
    new_name: str,
) -> None:
    editor.alter_field(
        new_model,
        old_model._meta.get_field(old_name),  # type: ignore[arg-type]  # a column is a concrete field
        new_model._meta.get_field(new_name),  # type: ignore[arg-type]  # a column is a concrete field
        strict=True,
    )


def rename_table(editor: BaseDatabaseSchemaEditor, old_model: type[Model], new_model: type[Model]) -> None:
    editor.alter_db_table(new_model, old_model._meta.db_table, new_model._meta.db_table)


def add_index(editor: BaseDatabaseSchemaEditor, model_class: type[Model], index: Index) -> None:
    editor.add_index(model_class, index)


def remove_index(editor: BaseDatabaseSchemaEditor, model_class: type[Model], index: Index) -> None:
    editor.remove_index(model_class, index)


def add_constraint(
    editor: BaseDatabaseSchemaEditor, model_class: type[Model], constraint: BaseConstraint
) -> None:
    editor.add_constraint(model_class, constraint)


def remove_constraint(
    editor: BaseDatabaseSchemaEditor, model_class: type[Model], constraint: BaseConstraint
) -> None:
    editor.remove_constraint(model_class, constraint)


# -- introspection ------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # the database's own type name, lowercase, without size: "character varying", "varchar", "uuid"
    nullable: bool
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: tuple[str, ...]
    unique: bool
    primary_key: bool = False


@dataclass(frozen=True)
class ForeignKeyInfo:
    name: str
    column: str
    references_table: str  # physical table name, schema-qualified on PostgreSQL ("addon_x.tickets")
    references_column: str


@dataclass
class TableInfo:
    addon_key: str
    table: str
    physical: str
    columns: dict[str, ColumnInfo] = field(default_factory=dict)
    indexes: list[IndexInfo] = field(default_factory=list)
    foreign_keys: list[ForeignKeyInfo] = field(default_factory=list)

    def index_on(self, *columns: str, unique: bool | None = None) -> IndexInfo | None:
        """The index (or unique constraint) covering exactly `columns`, in order."""
        return next(
            (
                i
                for i in self.indexes
                if i.columns == tuple(columns) and (unique is None or i.unique == unique)
            ),
            None,
        )


def table_exists(addon_key: str, table: str, using: str = DEFAULT_DB_ALIAS) -> bool:
    connection = connection_for(using)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = %s",
                [schema_name(addon_key), table],
            )
            return cursor.fetchone() is not None
        return physical_table(addon_key, table, connection.vendor) in connection.introspection.table_names(
            cursor
        )


def addon_tables(addon_key: str, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Logical names of the tables an addon has in the database (manifest or not)."""
    connection = connection_for(using)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s ORDER BY tablename",
                [schema_name(addon_key)],
            )
            return [row[0] for row in cursor.fetchall()]
        prefix = physical_table(addon_key, "x", connection.vendor)[:-1]
        return sorted(
            name[len(prefix) :]
            for name in connection.introspection.table_names(cursor)
            if name.startswith(prefix) and re.match(r"^[a-z]", name[len(prefix) :])
        )


def describe_table(addon_key: str, table: str, using: str = DEFAULT_DB_ALIAS) -> TableInfo | None:
    """Columns (type, nullability, size), indexes and foreign keys of an addon table as the
    database reports them; None when the table does not exist."""
    if not table_exists(addon_key, table, using):
        return None
    connection = connection_for(using)
    info = TableInfo(addon_key, table, physical_table(addon_key, table, connection.vendor))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _describe_postgresql(cursor, schema_name(addon_key), table, info)
        else:
            _describe_sqlite(connection, cursor, info)
    return info


def _describe_postgresql(cursor: CursorWrapper, schema: str, table: str, info: TableInfo) -> None:
    cursor.execute(
        """
        SELECT column_name, data_type, is_nullable, character_maximum_length, numeric_precision, numeric_scale
        FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position
        """,
        [schema, table],
    )
    for name, data_type, nullable, max_length, precision, scale in cursor.fetchall():
        info.columns[name] = ColumnInfo(name, data_type, nullable == "YES", max_length, precision, scale)
    cursor.execute(
        """
        SELECT i.relname, ix.indisunique, ix.indisprimary,
               array_agg(a.attname ORDER BY k.ord)
        FROM pg_catalog.pg_index ix
        JOIN pg_catalog.pg_class t ON t.oid = ix.indrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid
        CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE n.nspname = %s AND t.relname = %s
        GROUP BY i.relname, ix.indisunique, ix.indisprimary
        ORDER BY i.relname
        """,
        [schema, table],
    )
    for name, unique, primary, columns in cursor.fetchall():
        info.indexes.append(IndexInfo(name, tuple(c or "<expression>" for c in columns), unique, primary))
    cursor.execute(
        """
        SELECT c.conname, a.attname, rn.nspname || '.' || rt.relname, ra.attname
        FROM pg_catalog.pg_constraint c
        JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_catalog.pg_class rt ON rt.oid = c.confrelid
        JOIN pg_catalog.pg_namespace rn ON rn.oid = rt.relnamespace
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_catalog.pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND n.nspname = %s AND t.relname = %s
        ORDER BY c.conname
        """,
        [schema, table],
    )
    info.foreign_keys.extend(ForeignKeyInfo(*row) for row in cursor.fetchall())


_SIZED = re.compile(r"\s*([a-z ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*")


def _describe_sqlite(connection: BaseDatabaseWrapper, cursor: CursorWrapper, info: TableInfo) -> None:
    introspection = connection.introspection
    for column in introspection.get_table_description(cursor, info.physical):
        match = _SIZED.fullmatch(column.type_code.lower())
        base, size, scale = (
            (match.group(1), match.group(2), match.group(3))
            if match
            else (column.type_code.lower(), None, None)
        )
        is_decimal = base in ("decimal", "numeric")
        info.columns[column.name] = ColumnInfo(
            column.name,
            base,
            bool(column.null_ok),
            max_length=None if is_decimal or size is None else int(size),
            precision=int(size) if is_decimal and size else None,
            scale=int(scale) if is_decimal and scale else None,
        )
    for name, constraint in introspection.get_constraints(cursor, info.physical).items():
        if constraint["foreign_key"]:
            ref_table, ref_column = constraint["foreign_key"]
            info.foreign_keys.append(ForeignKeyInfo(name, constraint["columns"][0], ref_table, ref_column))
        elif constraint["index"] or constraint["unique"] or constraint["primary_key"]:
            info.indexes.append(
                IndexInfo(
                    name,
                    tuple(constraint["columns"]),
                    bool(constraint["unique"]),
                    bool(constraint["primary_key"]),
                )
            )
