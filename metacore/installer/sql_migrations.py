"""Bundle SQL migrations (`migrations/*.sql`), run after the manifest DDL.

PostgreSQL: each file runs under `SET LOCAL search_path TO addon_<key>, public` (the
previous path is restored afterwards, so the rest of the transaction never resolves a name
to an addon table), one statement at a time, each in a savepoint. A statement that
contradicts the manifest schema (SQLSTATE 42703 undefined column, 42P01 undefined table:
upstream SQL often names `org_id` where the manifest says `organization_id`) is skipped,
with the reason recorded; any other error fails the install. Files are recorded in
`AppliedMigration` with their checksum: `applied`, `partial` (some statements skipped) or
`skipped`; a file already applied with the same checksum is not run again (reinstall).

SQLite: the files are written for PostgreSQL, so they are recorded as skipped with that
reason; the manifest schema alone defines the tables.

On both databases a file that tries to control the transaction (BEGIN, COMMIT, ROLLBACK,
SAVEPOINT...) or to change the session (SET/RESET of the role, the session authorization or
the search path, DISCARD) is refused before anything runs: it would break the install's
atomicity or outlive it on a pooled connection.
"""
from __future__ import annotations

from dataclasses import dataclass

import re

import sqlparse
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from metacore.errors import ValidationError
from metacore.schema.naming import schema_name

SCHEMA_MISMATCH_STATES = {"42703": "undefined column", "42P01": "undefined table"}
SQLITE_REASON = "bundle SQL migrations are written for PostgreSQL; on SQLite the manifest schema alone defines the tables"


@dataclass(frozen=True)
class MigrationOutcome:
    name: str
    status: str  # applied | partial | skipped | unchanged
    reason: str = ""


FORBIDDEN = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|ABORT|END|START\s+TRANSACTION|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION|DISCARD"
    r"|(SET|RESET)(\s+(SESSION|LOCAL))?\s+(ROLE|SESSION\s+AUTHORIZATION|SEARCH_PATH)"
    r"|SET\s+(SESSION\s+)?(?!LOCAL\b|CONSTRAINTS\b)\w+|RESET\s+ALL)\b",
    re.IGNORECASE,
)


def check_statements(migration) -> None:
    """ValidationError naming the first statement that would control the transaction or
    change the session."""
    for number, statement in enumerate(statements(migration.sql), start=1):
        code = sqlparse.format(statement, strip_comments=True).strip()
        if FORBIDDEN.match(code):
            raise ValidationError(
                f"migration {migration.name}, statement {number} ({_first_line(code)}): bundle SQL must not"
                " control the transaction or change the session",
                errors={"migrations": [f"{migration.name}: statement {number} not allowed"]},
            )


def statements(sql: str) -> list[str]:
    """The statements of a SQL file, comments-only chunks dropped."""
    return [s.strip() for s in sqlparse.split(sql) if sqlparse.format(s, strip_comments=True).strip()]


def apply_migrations(addon_key: str, migrations, using=DEFAULT_DB_ALIAS) -> list[MigrationOutcome]:
    from metacore.models import AppliedMigration

    connection = connections[using]
    migrations = list(migrations)
    for migration in migrations:
        check_statements(migration)
    outcomes = []
    for migration in migrations:
        previous = AppliedMigration.objects.using(using).filter(addon_key=addon_key, name=migration.name).first()
        if previous is not None and previous.checksum == migration.checksum and previous.status != "skipped":
            outcomes.append(MigrationOutcome(migration.name, "unchanged", "already applied with this checksum"))
            continue
        if connection.vendor == "postgresql":
            outcome = _run_postgresql(connection, addon_key, migration)
        else:
            outcome = MigrationOutcome(migration.name, "skipped", SQLITE_REASON)
        AppliedMigration.objects.using(using).update_or_create(
            addon_key=addon_key,
            name=migration.name,
            defaults={"checksum": migration.checksum, "status": outcome.status, "reason": outcome.reason},
        )
        outcomes.append(outcome)
    return outcomes


def _run_postgresql(connection, addon_key: str, migration) -> MigrationOutcome:
    skipped, ran = [], 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path')")
        previous_path = cursor.fetchone()[0]
        quoted = connection.ops.quote_name(schema_name(addon_key))
        cursor.execute(f"SET LOCAL search_path TO {quoted}, public")
        try:
            for number, statement in enumerate(statements(migration.sql), start=1):
                try:
                    with transaction.atomic(using=connection.alias):
                        cursor.execute(statement)
                    ran += 1
                except DatabaseError as exc:
                    state = getattr(exc.__cause__, "sqlstate", None)
                    summary = _first_line(sqlparse.format(statement, strip_comments=True))
                    if state not in SCHEMA_MISMATCH_STATES:
                        raise ValidationError(
                            f"migration {migration.name}, statement {number} ({summary}): {_first_line(str(exc))}",
                            errors={"migrations": [f"{migration.name}: {exc}"]},
                        ) from exc
                    skipped.append(f"statement {number} ({summary}): {SCHEMA_MISMATCH_STATES[state]}: {_first_line(str(exc))}")
        finally:
            cursor.execute("SELECT set_config('search_path', %s, true)", [previous_path])
    if not skipped:
        return MigrationOutcome(migration.name, "applied")
    return MigrationOutcome(migration.name, "partial" if ran else "skipped", "skipped " + "; ".join(skipped))


def _first_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
