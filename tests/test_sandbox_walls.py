"""Hostile guests and hostile bundles against every wall of issue 11, on both databases:
the parser's allowlists, the per-addon database roles and RLS (PostgreSQL, also under a
non-superuser host role), the host's system columns, the SQLite authorizer and progress
handler, bundle SQL under the owner role, and the outbound HTTP budget. Each attempt is
refused with a typed error and leaves nothing behind."""

import json
import shutil
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sandbox_guests as guests
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from test_sandbox_host import EXAMPLE, TENANT, addons, call, execute, install, local_server, query  # noqa: F401

from metacore.context import CallContext
from metacore.errors import MetacoreError
from metacore.kernel import get_kernel
from metacore.manifest.model import Manifest
from metacore.models import Installation
from metacore.schema import roles
from metacore.schema.errors import ConfinementUnavailable

pytestmark = pytest.mark.django_db(transaction=True)
postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL roles and RLS")
OTHER = str(uuid.uuid4())


def refused(result, *codes):
    assert result["success"] is False and result["error"]["code"] in codes, result
    return result


def large_objects():
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_largeobject_metadata")
        return cursor.fetchone()[0]


ESCAPES = [
    "WITH x AS (SELECT 1) TABLE public.auth_user",
    "WITH x AS (SELECT 1) TABLE auth_user",
    "TABLE authtoken_token",
    "SELECT query_to_xml/**/('select * from auth_user', true, true, '')",
    "SELECT set_config/**/('metacore.tenant', '', true)",
    "SELECT pg_catalog.set_config('role', 'postgres', true)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_create(0)",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM tickets, LATERAL (SELECT * FROM auth_user) u",
    "SELECT * FROM generate_series(1, 10)",
    "SELECT 'auth_user'::regclass",
    "SELECT current_user",
    "SELECT * FROM tickets FOR UPDATE",
    "SELECT * INTO stolen FROM tickets",
    "SELECT 1 OPERATOR(public.+) 1",
    "SELECT * FROM secretdesk.tickets",
    "SELECT * FROM tickets t JOIN addon_secretdesk.tickets s ON true",
    "SELECT (SELECT password FROM auth_user LIMIT 1)",
    "SELECT ROW(1) IS NULL; SELECT * FROM auth_user",
    "SELECT xmlparse(document '<a/>')",
]


def test_known_escapes_are_refused(addons):
    before = large_objects()
    for sql in ESCAPES:
        refused(query(sql), "forbidden", "invalid_sql")
    assert large_objects() == before


WRITES = [
    ("UPDATE tickets SET organization_id = ?", [OTHER]),
    ("UPDATE tickets SET (title, organization_id) = (?, ?)", ["x", OTHER]),
    ("UPDATE tickets SET created_at = ?", [{"$ts": "2000-01-01T00:00:00Z"}]),
    ("UPDATE tickets SET updated_at = ?", [{"$ts": "2000-01-01T00:00:00Z"}]),
    ("UPDATE tickets SET id = ?", [{"$uuid": str(uuid.uuid4())}]),
    ("UPDATE tickets SET deleted_at = ?", [{"$ts": "2000-01-01T00:00:00Z"}]),
    (
        "INSERT INTO tickets (id, title, organization_id) VALUES (?, ?, ?)",
        [{"$uuid": str(uuid.uuid4())}, "x", OTHER],
    ),
    (
        "INSERT INTO tickets (id, title, created_at) VALUES (?, ?, ?)",
        [{"$uuid": str(uuid.uuid4())}, "x", "2000-01-01"],
    ),
    ("INSERT INTO tickets (id, title) SELECT id, title FROM tickets", []),
    (
        "INSERT INTO tickets (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET organization_id = ?",
        [{"$uuid": str(uuid.uuid4())}, "x", OTHER],
    ),
    (
        "INSERT INTO tickets (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at",
        [{"$uuid": str(uuid.uuid4())}, "x"],
    ),
    ("WITH moved AS (UPDATE tickets SET organization_id = ? RETURNING id) SELECT 1", [OTHER]),
    ("DELETE FROM tickets USING auth_user", []),
    ("UPDATE secretdesk.tickets SET title = 'x'", []),
]


def test_db_exec_never_writes_system_columns(addons):
    row_id = str(uuid.uuid4())
    assert execute("INSERT INTO tickets (id, title) VALUES (?, ?)", json.dumps([{"$uuid": row_id}, "mine"]))[
        "success"
    ]
    for sql, args in WRITES:
        refused(execute(sql, json.dumps(args)), "forbidden", "invalid_sql")
    rows = query("SELECT id, title, organization_id FROM tickets")["data"]["rows"]
    assert [r["title"] for r in rows] == ["mine"]
    assert str(uuid.UUID(str(rows[0]["organization_id"]))) == TENANT


def test_db_exec_stamps_the_hosts_columns(addons):
    row_id = str(uuid.uuid4())
    assert execute("INSERT INTO tickets (id, title) VALUES (?, ?)", json.dumps([{"$uuid": row_id}, "one"]))[
        "success"
    ]
    first = query("SELECT created_at, updated_at FROM tickets")["data"]["rows"][0]
    assert first["created_at"] and first["updated_at"]
    time.sleep(0.01)
    assert (
        execute("UPDATE tickets SET title = ? WHERE id = ?", json.dumps(["two", {"$uuid": row_id}]))["data"][
            "rowsAffected"
        ]
        == 1
    )
    second = query("SELECT created_at, updated_at FROM tickets")["data"]["rows"][0]
    assert second["created_at"] == first["created_at"] and second["updated_at"] > first["updated_at"]
    upsert = (
        "INSERT INTO tickets (id, title) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title"
    )
    assert execute(upsert, json.dumps([{"$uuid": row_id}, "three"]))["success"]
    assert query("SELECT title FROM tickets")["data"]["rows"] == [{"title": "three"}]
    # another tenant's upsert on the same id touches nothing of ours
    other = call("call_db_exec", upsert, json.dumps([{"$uuid": row_id}, "stolen"]), tenant=OTHER)
    assert other["success"] is False or other["data"]["rowsAffected"] == 0
    assert query("SELECT title FROM tickets")["data"]["rows"] == [{"title": "three"}]


# -- the database's own wall (PostgreSQL) ---------------------------------------------------


def _as_guest(sql, params=(), tenant=TENANT, key="probe"):
    """Run raw SQL as the addon's guest role, past the parser: what the database alone allows."""
    with transaction.atomic():
        manifest = Manifest.model_validate(Installation.objects.get(key=key).manifest)
        session = roles.GuestSession(connection, manifest, uuid.UUID(tenant), 2000)
        session.enter()
        with connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return cursor.fetchall() if cursor.description else cursor.rowcount


@postgresql_only
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM public.auth_user",
        "SELECT * FROM public.authtoken_token",
        "SELECT * FROM addon_secretdesk.tickets",
        "SELECT * FROM metacore_sandbox.guest_context",
        "INSERT INTO metacore_sandbox.guest_context VALUES (pg_backend_pid(), pg_current_xact_id(), NULL)",
        "SELECT pg_read_file('/etc/passwd')",
        "ALTER TABLE addon_probe.tickets DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE addon_probe.tickets NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY metacore_guest_tenant ON addon_probe.tickets",
        "CREATE TABLE addon_probe.x (a int)",
        "CREATE TABLE public.x (a int)",
        "SELECT lo_import('/etc/passwd')",
        "COPY addon_probe.tickets TO PROGRAM 'id'",
    ],
)
def test_the_guest_role_cannot_reach_past_its_tables(addons, sql):
    with pytest.raises(DatabaseError):
        _as_guest(sql)


@postgresql_only
def test_a_guest_cannot_widen_its_tenant(addons):
    """Even with set_config in reach (past the parser), RLS reads the tenant the host wrote."""
    assert execute(
        "INSERT INTO tickets (id, title) VALUES (?, ?)", json.dumps([{"$uuid": str(uuid.uuid4())}, "mine"])
    )["success"]
    assert call(
        "call_db_exec",
        "INSERT INTO tickets (id, title) VALUES (?, ?)",
        json.dumps([{"$uuid": str(uuid.uuid4())}, "theirs"]),
        tenant=OTHER,
    )["success"]
    widened = _as_guest(
        "SELECT set_config('metacore.tenant', '', true), (SELECT array_agg(title) FROM addon_probe.tickets)"
    )
    assert widened[0][1] == ["mine"]
    with pytest.raises(DatabaseError, match="row-level security"):
        _as_guest(
            "INSERT INTO addon_probe.tickets (id, title, organization_id) VALUES (%s, 'forged', %s)",
            [uuid.uuid4(), uuid.UUID(OTHER)],
        )
    with pytest.raises(DatabaseError, match="row-level security"):
        _as_guest("UPDATE addon_probe.tickets SET organization_id = %s", [uuid.UUID(OTHER)])


@postgresql_only
def test_roles_are_named_per_database_and_dropped_at_uninstall(addons):
    guest, owner = roles.guest_role(connection, "probe"), roles.owner_role(connection, "probe")
    with connection.cursor() as cursor:
        cursor.execute("SELECT md5(current_database())")
        tag = cursor.fetchone()[0][:8]
        cursor.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY(%s)",
            [[guest, owner]],
        )
        found = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'addon_probe'")
        schema_owner = cursor.fetchone()[0]
        cursor.execute("SELECT relforcerowsecurity FROM pg_class WHERE oid = 'addon_probe.tickets'::regclass")
        forced = cursor.fetchone()[0]
    assert tag in guest and tag in owner
    assert found == {guest: (False, False, False), owner: (False, False, False)}
    assert schema_owner == owner and forced
    get_kernel().installer.uninstall("probe")  # tables kept: they go back to the host's user
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", [[guest, owner]])
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT tableowner = current_user FROM pg_tables WHERE schemaname = 'addon_probe'")
        assert cursor.fetchall() == [(True,)]
    get_kernel().installer.uninstall("probe", drop_data=True)


@postgresql_only
def test_an_addon_installed_before_confinement_is_confined_on_first_use(addons):
    roles.drop_addon_roles("probe")
    assert query("SELECT count(*) AS n FROM tickets")["data"]["rows"] == [{"n": 0}]
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'addon_probe'")
        assert cursor.fetchone()[0] == roles.owner_role(connection, "probe")


# -- a host that is not a superuser ------------------------------------------------------------


@pytest.fixture
def host_role(db):
    """Switch the test's connection to a fresh non-superuser login role (named per database),
    with or without CREATEROLE; drop it afterwards."""
    created = []

    def switch(createrole: bool):
        name = f"{roles.prefix(connection)}host_{'cr' if createrole else 'plain'}"
        with connection.cursor() as cursor:
            cursor.execute(
                f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOBYPASSRLS {"CREATEROLE" if createrole else ""}'
            )
            cursor.execute("SELECT current_database()")
            database = cursor.fetchone()[0]
            cursor.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{name}"')
            cursor.execute(f'GRANT ALL ON SCHEMA public TO "{name}"')
            cursor.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{name}"')
            cursor.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{name}"')
            cursor.execute("SELECT to_regnamespace('metacore_sandbox') IS NOT NULL")
            if cursor.fetchone()[
                0
            ]:  # made by an earlier superuser install: the host's objects become this role's
                cursor.execute(f'ALTER SCHEMA metacore_sandbox OWNER TO "{name}"')
                cursor.execute(f'ALTER TABLE metacore_sandbox.guest_context OWNER TO "{name}"')
                cursor.execute(f'ALTER FUNCTION metacore_sandbox.guest_tenant() OWNER TO "{name}"')
            cursor.execute(f'SET ROLE "{name}"')
        created.append(name)
        from metacore.store import rls

        rls.forget(connection)
        return name

    yield switch
    from metacore.store import rls

    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        rls.forget(connection)
        for key in ("walled",):
            if Installation.objects.filter(key=key).exclude(state="uninstalled").exists():
                get_kernel().installer.uninstall(key, drop_data=True)
        for name in created:
            cursor.execute(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
            cursor.execute(f'DROP OWNED BY "{name}"')
            cursor.execute(f'DROP ROLE "{name}"')


def _walled(tmp_path, sql=None, timeout_ms=2000, capabilities=()):
    manifest = dict(
        backend={
            "runtime": "wasm",
            "entry": "backend/helpdesk.wasm",
            "exports": guests.PROBE_EXPORTS,
            "memory_limit_mb": 8,
            "timeout_ms": timeout_ms,
        },
        hooks={},
        actions={},
        capabilities=list(capabilities),
    )
    if sql is None:
        install(tmp_path, "walled", guests.probe(), **manifest)
        return
    target = tmp_path / "walled"
    shutil.copytree(EXAMPLE, target)
    data = json.loads((target / "manifest.json").read_text())
    data.update(key="walled", name="walled", **manifest)
    (target / "manifest.json").write_text(json.dumps(data))
    (target / "backend" / "helpdesk.wasm").write_bytes(guests.probe())
    (target / "migrations").mkdir()
    (target / "migrations" / "0001_x.sql").write_text(sql)
    get_kernel().installer.install(target)


def _walled_call(sql, args="[]", tenant=TENANT, export="call_db_query"):
    raw = get_kernel().sandbox.call_raw(
        "walled", export, f"{sql}\0{args}".encode(), CallContext(tenant=tenant)
    )
    return json.loads(raw)


@postgresql_only
def test_guests_under_a_non_superuser_host_are_confined_by_rls(host_role, tmp_path):
    host_role(createrole=True)
    _walled(tmp_path, "CREATE INDEX IF NOT EXISTS tickets_title_idx ON tickets (title);")
    insert = "INSERT INTO tickets (id, title) VALUES (?, ?)"
    assert _walled_call(insert, json.dumps([{"$uuid": str(uuid.uuid4())}, "mine"]), export="call_db_exec")[
        "success"
    ]
    assert _walled_call(insert, json.dumps([{"$uuid": str(uuid.uuid4())}, "theirs"]), OTHER, "call_db_exec")[
        "success"
    ]
    assert _walled_call("SELECT title FROM tickets")["data"]["rows"] == [{"title": "mine"}]
    assert _walled_call("SELECT title FROM tickets", tenant=OTHER)["data"]["rows"] == [{"title": "theirs"}]
    refused(_walled_call("SELECT set_config/**/('metacore.tenant', '', true)"), "forbidden")
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone()[0] is False


@postgresql_only
def test_without_createrole_db_imports_and_bundle_sql_are_refused(addons, host_role, tmp_path):
    host_role(createrole=False)
    result = refused(query("SELECT count(*) FROM tickets"), "confinement_unavailable")
    assert "CREATEROLE" in result["error"]["message"]
    with pytest.raises(ConfinementUnavailable, match="CREATEROLE"):
        _walled(tmp_path, "CREATE INDEX IF NOT EXISTS tickets_title_idx ON tickets (title);")
    assert not Installation.objects.filter(key="walled").exists()
    from django.core.checks import run_checks

    warnings = [m for m in run_checks(databases=["default"]) if m.id == "metacore.W050"]
    assert warnings and "CREATEROLE" in warnings[0].hint


# -- hostile bundles ---------------------------------------------------------------------------

BUNDLE_SQL = [
    "UPDATE public.auth_user SET is_superuser = true",
    "CREATE TABLE public.x (a int)",
    "CREATE TABLE addon_secretdesk.x (a int)",
    "SET ROLE postgres",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION postgres",
    "SELECT set_config('role', 'postgres', false)",
    "CREATE TABLE t (a text DEFAULT set_config('role', 'postgres', true))",
    "DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "SELECT query_to_xml('select 1', true, true, '')",
    "GRANT ALL ON tickets TO PUBLIC",
    "CREATE EXTENSION IF NOT EXISTS dblink",
    "ALTER SCHEMA addon_walled OWNER TO postgres",
    "COMMIT",
    "COPY tickets FROM PROGRAM 'id'",
]


def _no_trace():
    assert not Installation.objects.filter(key="walled").exists()
    assert not get_user_model().objects.filter(is_superuser=True).exists()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT to_regnamespace('addon_walled'), to_regclass('public.x'),"
                " (SELECT count(*) FROM pg_roles WHERE rolname LIKE %s)",
                [f"{roles.prefix(connection)}%_walled"],
            )
            assert cursor.fetchone() == (None, None, 0)


@pytest.mark.parametrize("sql", BUNDLE_SQL)
def test_hostile_bundle_sql_fails_the_install_without_a_trace(db, tmp_path, sql):
    get_user_model().objects.create_user("someone", password="pw")
    with pytest.raises(MetacoreError):
        _walled(tmp_path, f"CREATE INDEX IF NOT EXISTS tickets_title_idx ON tickets (title);\n{sql};\n")
    _no_trace()


@postgresql_only
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE auth_user SET is_superuser = true",
        "DELETE FROM metacore_installation",
        "INSERT INTO tickets (id, title, organization_id) SELECT gen_random_uuid(), password, gen_random_uuid() FROM auth_user",
    ],
)
def test_bundle_sql_runs_without_rights_outside_its_schema(db, tmp_path, sql):
    """Statements the parser lets through (plain DML/DDL) still fail: the owner role has no rights on public."""
    get_user_model().objects.create_user("someone", password="pw")
    with pytest.raises(MetacoreError, match="permission denied"):
        _walled(tmp_path, f"{sql};\n")
    _no_trace()


@postgresql_only
def test_bundle_sql_cannot_leave_rls_switched_off(db, tmp_path):
    _walled(
        tmp_path,
        "ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;\nALTER TABLE tickets DISABLE ROW LEVEL SECURITY;\n"
        "DROP POLICY IF EXISTS metacore_guest_tenant ON tickets;\n",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid)"
            " FROM pg_class c WHERE oid = 'addon_walled.tickets'::regclass"
        )
        assert cursor.fetchone() == (True, True, 2)
    get_kernel().installer.uninstall("walled", drop_data=True)


# -- time: SQLite's progress handler, PostgreSQL's statement timeout ---------------------------------


def test_a_runaway_query_stops_at_the_calls_budget(db, tmp_path):
    _walled(tmp_path, timeout_ms=1000)
    try:
        for batch in range(10):
            args = [value for i in range(30) for value in ({"$uuid": str(uuid.uuid4())}, f"t{batch}.{i}")]
            rows = ", ".join("(?, ?)" for _ in range(30))
            inserted = _walled_call(
                f"INSERT INTO tickets (id, title) VALUES {rows}", json.dumps(args), export="call_db_exec"
            )
            assert inserted["success"], inserted
        started = time.monotonic()
        try:
            outcome = _walled_call(
                "SELECT count(*) AS n FROM tickets a, tickets b, tickets c"
                " WHERE a.title || b.title || c.title = 'x'"
            )
            refused(outcome, "timeout")
        except MetacoreError as exc:  # the guest's own deadline came first
            assert exc.code == "timeout" and exc.status == 504
        assert time.monotonic() - started < 3
        # nothing holds the database: a write goes through at once
        after = _walled_call(
            "INSERT INTO tickets (id, title) VALUES (?, ?)",
            json.dumps([{"$uuid": str(uuid.uuid4())}, "after"]),
            export="call_db_exec",
        )
        assert after["success"], after
    finally:
        get_kernel().installer.uninstall("walled", drop_data=True)


# -- DEBUG on (make run defaults) ----------------------------------------------------------------


def test_helpdesk_actions_work_with_debug_on(settings, db):
    from rest_framework.test import APIClient
    from test_sandbox_service import make_user

    settings.DEBUG = True
    get_kernel().installer.install(EXAMPLE)
    try:
        client = APIClient()
        client.force_authenticate(make_user("agent"))
        ticket = client.post("/api/dynamic/tickets", {"title": "Printer on fire"}, format="json").json()[
            "data"
        ]
        resolved = client.post(
            f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "rebooted"}, format="json"
        )
        assert resolved.status_code == 200, resolved.content
        escalated = client.post(
            f"/api/dynamic/tickets/{ticket['id']}/action/escalate", {"resolution": "loud"}, format="json"
        )
        assert escalated.status_code == 422 and escalated.json()["error"]["code"] == "escalation_refused"
        assert connection.queries  # the debug cursor did record the host's own queries
    finally:
        get_kernel().installer.uninstall("helpdesk", drop_data=True)


# -- outbound HTTP: one budget, Host is the host's ---------------------------------------------------


@pytest.fixture
def drip_server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            for _ in range(30):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _allow_local(settings):
    settings.METACORE = {
        **getattr(settings, "METACORE", {}),
        "HTTP_RESOLVER": "test_sandbox_host.fake_resolver",
        "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
        "HTTP_TIMEOUT_S": 1.5,
    }


def test_a_dripping_server_is_cut_at_the_budget(db, tmp_path, drip_server, settings):
    _allow_local(settings)
    _walled(
        tmp_path,
        timeout_ms=5000,
        capabilities=[
            {"kind": "http:fetch", "target": f"internal.example.test:{drip_server}", "reason": "t"}
        ],
    )
    try:
        started = time.monotonic()
        raw = get_kernel().sandbox.call_raw(
            "walled",
            "call_http_fetch",
            f"http://internal.example.test:{drip_server}/slow\0GET\0".encode(),
            CallContext(tenant=TENANT),
        )
        elapsed = time.monotonic() - started
        result = json.loads(raw)
        assert result["error"] == "transport" and "budget" in result["message"], result
        assert elapsed < 2.5, (elapsed, result)
    finally:
        get_kernel().installer.uninstall("walled", drop_data=True)


HTTP_REQUEST_GUEST = """
  (data (i32.const 256) "GET")
  (data (i32.const 272) "{\\"Host\\":\\"metadata.google.internal\\"}")
  (func (export "host_override") (param $p i32) (param $n i32) (result i64)
    (call $http_request (local.get $p) (local.get $n) (i32.const 256) (i32.const 3)
                        (i32.const 272) (i32.const 35) (i32.const 0) (i32.const 0)))
"""


def test_http_request_cannot_set_host(db, tmp_path, local_server, settings):
    _allow_local(settings)
    wasm = guests.module(
        HTTP_REQUEST_GUEST,
        extra_imports='(import "metacore_host" "http_request"'
        " (func $http_request (param i32 i32 i32 i32 i32 i32 i32 i32) (result i64)))",
    )
    install(
        tmp_path,
        "walled",
        wasm,
        hooks={},
        actions={},
        backend={
            "runtime": "wasm",
            "entry": "backend/helpdesk.wasm",
            "exports": ["host_override"],
            "memory_limit_mb": 8,
            "timeout_ms": 2000,
        },
        capabilities=[
            {"kind": "http:fetch", "target": f"internal.example.test:{local_server}", "reason": "t"}
        ],
    )
    try:
        raw = get_kernel().sandbox.call_raw(
            "walled",
            "host_override",
            f"http://internal.example.test:{local_server}/".encode(),
            CallContext(tenant=TENANT),
        )
        result = json.loads(raw)
        assert result["error"] == "bad_request" and "Host" in result["message"], result
    finally:
        get_kernel().installer.uninstall("walled", drop_data=True)
