"""PostgreSQL roles that confine addon SQL: the database's wall under the sandbox's parser.

Per addon (roles are cluster-wide, so every name carries a short hash of
`current_database()`: two databases in one cluster never share one):
- `mc_<db>_o_<key>`, NOLOGIN, owns the schema `addon_<key>` and its tables. Bundle SQL
  migrations run under `SET LOCAL ROLE` to it: DDL inside its own schema only, no rights on
  `public` or any other schema.
- `mc_<db>_g_<key>`, NOLOGIN, the guest: USAGE on its schema and SELECT/INSERT/UPDATE/DELETE
  on the manifest's tables, nothing else (not their owner, so it cannot switch RLS off).
  Every `db_query`/`db_exec` statement runs under `SET LOCAL ROLE` to it.
- every guest is a member of `mc_<db>_guests`, the target of a RESTRICTIVE policy on each
  organization-scoped table: `organization_id = metacore_sandbox.guest_tenant()`. That
  function (SECURITY DEFINER, owned by the host) reads the tenant the host wrote for this
  backend and transaction into `metacore_sandbox.guest_context`, a table the guest cannot
  write: a `set_config('metacore.tenant', ...)` by the guest changes nothing it can see.

Creating roles needs a superuser or CREATEROLE; `can_confine` says whether the connection
has it, and without it wasm `db_*` imports and bundle SQL are refused (see the system
check `metacore.W050` in host/checks.py).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from django.db import connections

from metacore.schema.errors import ConfinementUnavailable
from metacore.schema.naming import schema_name

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from metacore.manifest.model import Manifest

SANDBOX_SCHEMA = "metacore_sandbox"
GUEST_POLICY = "metacore_guest_tenant"


def _tag(connection: BaseDatabaseWrapper) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT md5(current_database())")
        digest: str = cursor.fetchone()[0]
        return digest[:8]


def prefix(connection: BaseDatabaseWrapper) -> str:
    """The prefix of every role this database's metacore creates."""
    return f"mc_{_tag(connection)}_"


def _role(connection: BaseDatabaseWrapper, kind: str, key: str, tag: str | None = None) -> str:
    base = f"mc_{tag or _tag(connection)}_{kind}_"
    if len(base) + len(key) > 63:
        key = f"{key[:40]}_{hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:8]}"
    return base + key


def guest_role(connection: BaseDatabaseWrapper, key: str, tag: str | None = None) -> str:
    return _role(connection, "g", key, tag)


def owner_role(connection: BaseDatabaseWrapper, key: str, tag: str | None = None) -> str:
    return _role(connection, "o", key, tag)


def group_role(tag: str) -> str:
    return f"mc_{tag}_guests"


def can_confine(connection: BaseDatabaseWrapper) -> bool:
    """May this connection's role create the confinement roles (superuser or CREATEROLE)?
    Always True off PostgreSQL (SQLite's wall is the authorizer)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    return bool(row and row[0])


def require_confinement(connection: BaseDatabaseWrapper, what: str) -> None:
    if not can_confine(connection):
        raise ConfinementUnavailable(
            f"{what} refused: the database user may not create roles (grant it CREATEROLE), so addon SQL"
            " cannot be confined by the database"
        )


def _exists(cursor: CursorWrapper, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def _create_role(cursor: CursorWrapper, role: str, quote: Callable[[str], str]) -> None:
    if not _exists(cursor, role):
        cursor.execute(f"CREATE ROLE {quote(role)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
    cursor.execute(f"GRANT {quote(role)} TO CURRENT_USER")  # the host may SET ROLE to it


def _ensure_sandbox_schema(cursor: CursorWrapper, quote: Callable[[str], str], tag: str) -> None:
    """The per-database schema holding the host-written tenant and the function reading it."""
    group = group_role(tag)
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext('metacore_sandbox'))")
    if not _exists(cursor, group):
        cursor.execute(f"CREATE ROLE {quote(group)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SANDBOX_SCHEMA}")
    cursor.execute(f"REVOKE ALL ON SCHEMA {SANDBOX_SCHEMA} FROM PUBLIC")
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {SANDBOX_SCHEMA}.guest_context"
        " (pid integer PRIMARY KEY, xid xid8 NOT NULL, tenant uuid)"
    )
    cursor.execute(f"REVOKE ALL ON {SANDBOX_SCHEMA}.guest_context FROM PUBLIC")
    cursor.execute(
        f"CREATE OR REPLACE FUNCTION {SANDBOX_SCHEMA}.guest_tenant() RETURNS uuid"
        " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS"
        f" $$ SELECT tenant FROM {SANDBOX_SCHEMA}.guest_context"
        " WHERE pid = pg_backend_pid() AND xid = pg_current_xact_id() $$"
    )
    cursor.execute(f"REVOKE ALL ON FUNCTION {SANDBOX_SCHEMA}.guest_tenant() FROM PUBLIC")
    cursor.execute(f"GRANT USAGE ON SCHEMA {SANDBOX_SCHEMA} TO {quote(group)}")
    cursor.execute(f"GRANT EXECUTE ON FUNCTION {SANDBOX_SCHEMA}.guest_tenant() TO {quote(group)}")


def confine_addon(manifest: Manifest, using: str = "default") -> None:
    """Create (or re-assert) the addon's roles, ownership, grants and guest policies; run at
    install and upgrade, before bundle SQL (so it runs as the owner) and after it (so what
    bundle SQL did to RLS or grants is undone). A no-op off PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    require_confinement(connection, f"addon {manifest.key}: confining its SQL")
    from metacore.store.rls import enable_rls

    quote = connection.ops.quote_name
    tag = _tag(connection)
    key = manifest.key
    schema = quote(schema_name(key))
    owner, guest, group = owner_role(connection, key, tag), guest_role(connection, key, tag), group_role(tag)
    with connection.cursor() as cursor:
        _ensure_sandbox_schema(cursor, quote, tag)
        _create_role(cursor, owner, quote)
        _create_role(cursor, guest, quote)
        cursor.execute(f"GRANT {quote(group)} TO {quote(guest)}")
        cursor.execute(f"ALTER SCHEMA {schema} OWNER TO {quote(owner)}")
        cursor.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
        cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quote(guest)}")
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
            [schema_name(key)],
        )
        present = {row[0] for row in cursor.fetchall()}
        for name in present:
            cursor.execute(f"ALTER TABLE {schema}.{quote(name)} OWNER TO {quote(owner)}")
            cursor.execute(f"REVOKE ALL ON {schema}.{quote(name)} FROM PUBLIC, {quote(guest)}")
        for model in manifest.models:
            if model.table not in present:
                continue
            table = f"{schema}.{quote(model.table)}"
            cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {quote(guest)}")
            if model.org_scoped:
                enable_rls(connection, f'{schema_name(key)}"."{model.table}')
                cursor.execute(f"DROP POLICY IF EXISTS {GUEST_POLICY} ON {table}")
                check = f"organization_id = {SANDBOX_SCHEMA}.guest_tenant()"
                cursor.execute(
                    f"CREATE POLICY {GUEST_POLICY} ON {table} AS RESTRICTIVE TO {quote(group)}"
                    f" USING ({check}) WITH CHECK ({check})"
                )


def drop_addon_roles(key: str, using: str = "default") -> None:
    """Drop the addon's roles (at uninstall); what the owner still owns (tables kept by an
    uninstall without --drop-data) goes back to the host's user."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for role in (guest_role(connection, key), owner_role(connection, key)):
            _drop_role(cursor, role, connection.ops.quote_name)


def _drop_role(cursor: CursorWrapper, role: str, quote: Callable[[str], str]) -> None:
    if not _exists(cursor, role):
        return
    cursor.execute(f"REASSIGN OWNED BY {quote(role)} TO CURRENT_USER")
    cursor.execute(f"DROP OWNED BY {quote(role)}")
    cursor.execute(f"DROP ROLE {quote(role)}")


def drop_database_roles(using: str = "default") -> list[str]:
    """Drop every role this database's metacore created (test teardown, decommissioning)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY rolname DESC",
            [prefix(connection)],
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            _drop_role(cursor, name, quote)
    return names


class GuestSession:
    """Enter and leave the guest role around one sandbox statement (inside its savepoint).

    The host writes the call's tenant into `guest_context` as itself, then switches to the
    guest role with `SET LOCAL ROLE`, a search_path of the addon schema alone and a
    statement timeout; `leave` restores all three. Cross-addon tables (granted by db:read)
    get a SELECT grant for this guest on first use."""

    def __init__(
        self,
        connection: BaseDatabaseWrapper,
        manifest: Manifest,
        tenant: uuid.UUID | str | None,
        timeout_ms: int,
        foreign_tables: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.connection, self.manifest, self.key, self.tenant = connection, manifest, manifest.key, tenant
        self.timeout_ms, self.foreign_tables = timeout_ms, foreign_tables
        self.previous: tuple[str, str, str] | None = None  # role, search_path, statement_timeout

    def enter(self) -> None:
        connection, quote = self.connection, self.connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT md5(current_database()), current_setting('role'), current_setting('search_path'),"
                " current_setting('statement_timeout'), rolsuper OR rolcreaterole"
                " FROM pg_roles WHERE rolname = current_user"
            )
            tag, role, path, timeout, may_create = cursor.fetchone()
            guest = guest_role(connection, self.key, tag[:8])
            if not may_create:
                raise ConfinementUnavailable(
                    "db_query/db_exec refused: the database user may not create roles (grant it CREATEROLE),"
                    " so addon SQL cannot be confined by the database"
                )
            cursor.execute(
                "SELECT has_schema_privilege(%s, %s, 'USAGE') FROM pg_roles WHERE rolname = %s",
                [guest, schema_name(self.key), guest],
            )
            ready = cursor.fetchone()
            if ready is None or not ready[0]:  # installed before confinement existed: confine it now
                confine_addon(self.manifest, connection.alias)
            for schema, table in self.foreign_tables:
                qualified = f"{quote(schema)}.{quote(table)}"
                cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [guest, qualified])
                if not cursor.fetchone()[0]:
                    cursor.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {quote(guest)}")
                    cursor.execute(f"GRANT SELECT ON {qualified} TO {quote(guest)}")
            cursor.execute(
                f"INSERT INTO {SANDBOX_SCHEMA}.guest_context (pid, xid, tenant)"
                " VALUES (pg_backend_pid(), pg_current_xact_id(), %s)"
                " ON CONFLICT (pid) DO UPDATE SET xid = EXCLUDED.xid, tenant = EXCLUDED.tenant",
                [self.tenant],
            )
            self.previous = (role, path, timeout)
            cursor.execute(
                "SELECT set_config('search_path', %s, true), set_config('statement_timeout', %s, true),"
                " set_config('role', %s, true)",
                [quote(schema_name(self.key)), f"{self.timeout_ms}ms", guest],
            )

    def leave(self) -> None:
        if self.previous is None:
            return
        role, path, timeout = self.previous
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('role', %s, true), set_config('search_path', %s, true),"
                " set_config('statement_timeout', %s, true)",
                [role, path, timeout],
            )
