"""PostgreSQL row-level security on org-scoped addon tables: a second wall behind the
store's own tenant filter.

Each org-scoped table gets a policy comparing `organization_id` with the transaction-local
setting `metacore.tenant`, which the store sets (`set_config(..., true)`, i.e. `SET LOCAL`)
in every transaction touching such a table. With the setting present, a query can only see
and write that tenant's rows, even one built without the tenant filter.

What the wall does not do (by design, so the installer, upgrades, bundle SQL migrations and
host maintenance keep working): a session that has not set `metacore.tenant` is not
restricted; and PostgreSQL superusers and roles with BYPASSRLS skip every policy. The table
is `FORCE`d, so a non-superuser owner role (the usual production set-up) is bound by it.
Since binding a bypassing role would change nothing, the store only binds (and only opens a
transaction for a read) when the connection's role is subject to RLS; that is checked once
per database connection.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

POLICY = "metacore_tenant_isolation"
SETTING = "metacore.tenant"
_CURRENT = f"NULLIF(current_setting('{SETTING}', true), '')"


def enable_rls(connection: BaseDatabaseWrapper, db_table: str) -> None:
    """Enable and force RLS on `db_table` (Django `db_table`, possibly schema-qualified) with
    the tenant policy; idempotent (a reinstall adopting the table replaces the policy).
    A no-op on databases other than PostgreSQL."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(db_table)
    check = f"{_CURRENT} IS NULL OR organization_id = {_CURRENT}::uuid"
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        cursor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        cursor.execute(f"CREATE POLICY {POLICY} ON {table} USING ({check}) WITH CHECK ({check})")


def binds(connection: BaseDatabaseWrapper) -> bool:
    """Is this connection's role subject to row-level security (not a superuser, no
    BYPASSRLS)? Asked once per configured database login, then cached; `forget` after a
    `SET ROLE`."""
    if connection.vendor != "postgresql":
        return False
    key = _login(connection)
    if key not in _BINDS:
        with connection.cursor() as cursor:
            cursor.execute("SELECT NOT (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
        _BINDS[key] = bool(row and row[0])
    return _BINDS[key]


def forget(connection: BaseDatabaseWrapper) -> None:
    _BINDS.pop(_login(connection), None)


def _login(connection: BaseDatabaseWrapper) -> tuple[str, object, object, object, object]:
    settings = connection.settings_dict
    return (
        connection.alias,
        settings.get("HOST"),
        settings.get("PORT"),
        settings.get("NAME"),
        settings.get("USER"),
    )


_BINDS: dict[tuple[str, object, object, object, object], bool] = {}


def set_tenant(connection: BaseDatabaseWrapper, tenant: str | None) -> None:
    """Bind the current transaction to `tenant` (call inside `transaction.atomic`)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [SETTING, str(tenant) if tenant else ""])
