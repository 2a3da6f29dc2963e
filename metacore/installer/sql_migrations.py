"""Bundle SQL migrations (`migrations/*.sql`), run after the manifest DDL.

PostgreSQL: each file is parsed with PostgreSQL's own grammar (`pglast`) and must consist of
allowlisted statement kinds (tables, indexes, sequences, views, comments, enum types and
plain DML) naming no schema but the addon's and calling only allowlisted functions: no
transaction control, no SET ROLE/SESSION AUTHORIZATION/search_path, no DO blocks, no
functions or procedures (their bodies could switch the role back). It then runs under
`SET LOCAL ROLE` to the addon's owner role (schema/roles.py), which may run DDL only inside
`addon_<key>` and has no rights on `public` or any other schema; the previous role and
search_path are restored afterwards. One statement at a time, each in a savepoint: a
statement that contradicts the manifest schema (SQLSTATE 42703 undefined column, 42P01
undefined table: upstream SQL often names `org_id` where the manifest says
`organization_id`) is skipped, with the reason recorded; any other error (a permission
denied included) fails the install, and the install's transaction takes everything with
it. Files are recorded in `AppliedMigration` with their checksum: `applied`, `partial`
(some statements skipped) or `skipped`; a file already applied with the same checksum is not
run again (reinstall). Where the database user may not create roles, bundle SQL is refused
(ConfinementUnavailable) rather than run with the host's rights.

SQLite: the files are written for PostgreSQL, so they are recorded as skipped with that
reason; the manifest schema alone defines the tables (they are still checked, so a bundle
is refused the same way on both databases).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from pglast import ast, parse_sql
from pglast.parser import ParseError

from metacore.errors import InvalidInput
from metacore.sandbox.sql import ALLOWED_FUNCTIONS
from metacore.schema import roles
from metacore.schema.naming import schema_name

if TYPE_CHECKING:
    from metacore.installer.bundle import Migration
    from metacore.manifest.model import Manifest

SCHEMA_MISMATCH_STATES = {"42703": "undefined column", "42P01": "undefined table"}
SQLITE_REASON = (
    "bundle SQL migrations are written for PostgreSQL; on SQLite the manifest schema alone defines the tables"
)
STATEMENT_KINDS = (
    ast.CreateStmt,
    ast.IndexStmt,
    ast.AlterTableStmt,
    ast.CreateSeqStmt,
    ast.AlterSeqStmt,
    ast.ViewStmt,
    ast.CommentStmt,
    ast.CreateEnumStmt,
    ast.AlterEnumStmt,
    ast.RenameStmt,
    ast.DropStmt,
    ast.InsertStmt,
    ast.UpdateStmt,
    ast.DeleteStmt,
    ast.SelectStmt,
    ast.ConstraintsSetStmt,
    ast.VariableSetStmt,
)
MIGRATION_FUNCTIONS = ALLOWED_FUNCTIONS | {
    "gen_random_uuid",
    "uuid_generate_v4",
    "nextval",
    "currval",
    "setval",
    "to_tsvector",
    "setweight",
    "to_jsonb",
    "to_json",
    "jsonb_build_array",
    "json_build_array",
    "md5",
    "random",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timezone",
    "left",
    "right",
    "position",
    "split_part",
    "regexp_replace",
    "lpad",
    "rpad",
    "make_date",
    "age",
    "date_part",
    "unnest",
    "generate_series",
    "format",
}
SESSION_SETTINGS = {"role", "session_authorization", "search_path"}


@dataclass(frozen=True)
class MigrationOutcome:
    name: str
    status: str  # applied | partial | skipped | unchanged
    reason: str = ""


def check_statements(migration: Migration, addon_key: str | None = None) -> list[str]:
    """The statements of `migration`, each checked against the allowlists; InvalidInput
    naming the first one outside them."""

    def refuse(number: int, text: str, why: str) -> NoReturn:
        raise InvalidInput(
            f"migration {migration.name}, statement {number} ({_first_line(text)}): {why}",
            errors={"migrations": [f"{migration.name}: statement {number} not allowed"]},
        )

    found = []
    source = migration.sql
    try:
        parsed = parse_sql(migration.sql)
    except ParseError as exc:
        for number, text in enumerate(statements(migration.sql), start=1):  # name the statement
            try:
                parse_sql(text)
            except ParseError as inner:
                refuse(number, text, f"not valid SQL: {inner}")
        raise InvalidInput(
            f"migration {migration.name} is not valid SQL: {exc}",
            errors={"migrations": [f"{migration.name}: {exc}"]},
        ) from None
    for number, raw in enumerate(parsed, start=1):
        end = (raw.stmt_location or 0) + raw.stmt_len if raw.stmt_len else len(source)
        text = source[raw.stmt_location : end].strip()  # pglast's offsets count characters
        stmt = raw.stmt
        if not isinstance(stmt, STATEMENT_KINDS):
            refuse(
                number,
                text,
                f"{type(stmt).__name__} is not allowed in bundle SQL (it must not control the"
                " transaction or change the session, and may not define code)",
            )
        if isinstance(stmt, ast.VariableSetStmt) and (
            not stmt.is_local or (stmt.name or "").lower() in SESSION_SETTINGS
        ):
            refuse(number, text, "bundle SQL must not control the transaction or change the session")
        problem = _node_problem(stmt, addon_key)
        if problem:
            refuse(number, text, problem)
        found.append(text)
    return found


def _node_problem(node: ast.Node, addon_key: str | None) -> str | None:
    """Why a node inside a statement is not allowed (None: fine)."""
    for child in _nodes(node):
        if isinstance(child, ast.FuncCall):
            names = [n.sval.lower() for n in child.funcname]  # type: ignore[union-attr]  # a call always names its function
            if names[-1] not in MIGRATION_FUNCTIONS or (len(names) > 1 and names[0] != "pg_catalog"):
                return f"function {'.'.join(names)} is not allowed in bundle SQL"
        elif (
            isinstance(child, ast.RangeVar)
            and child.schemaname is not None
            and addon_key is not None
            and child.schemaname.lower() != schema_name(addon_key)
        ):
            return f"bundle SQL may only name its own schema, not {child.schemaname}"
        elif isinstance(child, (ast.DoStmt, ast.CreateFunctionStmt, ast.CallStmt, ast.RangeFunction)):
            return f"{type(child).__name__} is not allowed in bundle SQL"
        elif (
            isinstance(child, ast.Node)
            and type(child).__name__.endswith("Stmt")
            and not isinstance(child, STATEMENT_KINDS)
        ):
            return f"{type(child).__name__} is not allowed in bundle SQL"
    return None


def _nodes(node: object) -> Iterator[ast.Node]:
    if isinstance(node, (tuple, list)):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in node:  # its field names (the class's __slots__)
            value = getattr(node, name)
            if isinstance(value, (ast.Node, tuple, list)):
                yield from _nodes(value)


def statements(sql: str) -> list[str]:
    """The statements of a SQL file as PostgreSQL's grammar splits them (comments dropped)."""
    from pglast import split

    return [s.strip() for s in split(sql, with_parser=False) if s.strip()]


def apply_migrations(
    manifest: Manifest, migrations: Iterable[Migration], using: str = DEFAULT_DB_ALIAS
) -> list[MigrationOutcome]:
    """Check every file, confine the addon (roles, grants, RLS), run what is new under the
    owner role, then confine again so nothing bundle SQL did to grants or RLS stays."""
    from metacore.models import AppliedMigration

    addon_key = manifest.key
    connection = connections[using]
    migrations = list(migrations)
    checked = {m.name: check_statements(m, addon_key) for m in migrations}
    confined = connection.vendor == "postgresql" and roles.can_confine(connection)
    if connection.vendor == "postgresql" and migrations and not confined:
        roles.require_confinement(connection, f"addon {addon_key}: bundle SQL")
    if confined:
        roles.confine_addon(manifest, using)
    outcomes = []
    for migration in migrations:
        previous = (
            AppliedMigration.objects.using(using).filter(addon_key=addon_key, name=migration.name).first()
        )
        if previous is not None and previous.checksum == migration.checksum and previous.status != "skipped":
            outcomes.append(
                MigrationOutcome(migration.name, "unchanged", "already applied with this checksum")
            )
            continue
        if connection.vendor == "postgresql":
            outcome = _run_postgresql(connection, addon_key, migration, checked[migration.name])
        else:
            outcome = MigrationOutcome(migration.name, "skipped", SQLITE_REASON)
        AppliedMigration.objects.using(using).update_or_create(
            addon_key=addon_key,
            name=migration.name,
            defaults={"checksum": migration.checksum, "status": outcome.status, "reason": outcome.reason},
        )
        outcomes.append(outcome)
    if confined and migrations:
        roles.confine_addon(manifest, using)
    return outcomes


def _run_postgresql(
    connection: BaseDatabaseWrapper, addon_key: str, migration: Migration, checked: list[str]
) -> MigrationOutcome:
    skipped: list[str] = []
    ran = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path'), current_setting('role')")
        previous_path, previous_role = cursor.fetchone()
        quoted = connection.ops.quote_name(schema_name(addon_key))
        cursor.execute(f"SET LOCAL search_path TO {quoted}, public")
        cursor.execute("SELECT set_config('role', %s, true)", [roles.owner_role(connection, addon_key)])
        try:
            for number, statement in enumerate(checked, start=1):
                try:
                    with transaction.atomic(using=connection.alias):
                        cursor.execute(statement)
                    ran += 1
                except DatabaseError as exc:
                    state = getattr(exc.__cause__, "sqlstate", None)
                    summary = _first_line(statement)
                    if state not in SCHEMA_MISMATCH_STATES:
                        raise InvalidInput(
                            f"migration {migration.name}, statement {number} ({summary}): {_first_line(str(exc))}",
                            errors={"migrations": [f"{migration.name}: {exc}"]},
                        ) from exc
                    skipped.append(
                        f"statement {number} ({summary}): {SCHEMA_MISMATCH_STATES[state]}: {_first_line(str(exc))}"
                    )
        finally:
            if not connection.needs_rollback:
                cursor.execute(
                    "SELECT set_config('role', %s, true), set_config('search_path', %s, true)",
                    [previous_role, previous_path],
                )
    if not skipped:
        return MigrationOutcome(migration.name, "applied")
    return MigrationOutcome(migration.name, "partial" if ran else "skipped", "skipped " + "; ".join(skipped))


def _first_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
