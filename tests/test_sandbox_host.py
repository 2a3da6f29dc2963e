"""The metacore_host imports against a probing guest: each is confined to what the addon's
capabilities grant, answers the upstream envelopes, and turns bad pointers into guest errors."""

import json
import shutil
import socket
import uuid
from pathlib import Path

import pytest
import sandbox_guests as guests
from django.db import connection

from metacore.context import CallContext
from metacore.events import addon_event
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation
from metacore.sandbox.errors import BadPointer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)
KEYS = ("probe", "vault", "secretdesk")


def install(tmp_path, key, wasm=None, **changes):
    target = tmp_path / key
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(key=key, name=key, **changes)
    if wasm is not None:
        (target / "backend" / "helpdesk.wasm").write_bytes(wasm)
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)


@pytest.fixture
def addons(tmp_path, local_server):
    install(tmp_path, "vault")
    install(tmp_path, "secretdesk")
    install(
        tmp_path,
        "probe",
        guests.probe(),
        backend={
            "runtime": "wasm",
            "entry": "backend/helpdesk.wasm",
            "exports": guests.PROBE_EXPORTS,
            "memory_limit_mb": 8,
            "timeout_ms": 2000,
        },
        hooks={},
        actions={},
        capabilities=[
            {"kind": "event:emit", "target": "probe.*", "reason": "test"},
            {"kind": "db:read", "target": "addon_vault.tickets", "reason": "test"},
            {"kind": "http:fetch", "target": "internal.example.test", "reason": "test"},
            {"kind": "http:fetch", "target": "metadata.example.test", "reason": "test"},
            {"kind": "http:fetch", "target": f"internal.example.test:{local_server}", "reason": "test"},
        ],
    )
    yield
    for key in KEYS:
        if Installation.objects.filter(key=key).exclude(state="uninstalled").exists():
            get_kernel().installer.uninstall(key, drop_data=True)


TENANT = str(uuid.uuid4())


def call(export, *parts, tenant=TENANT):
    """Call a probe export with `parts` joined by NUL (how the probe splits its arguments)."""
    raw = get_kernel().sandbox.call_raw(
        "probe", export, "\0".join(parts).encode(), CallContext(tenant=tenant)
    )
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


def query(sql, args="[]"):
    return call("call_db_query", sql, args)


def execute(sql, args="[]"):
    return call("call_db_exec", sql, args)


def test_db_query_reads_own_tables_with_the_upstream_envelope(addons):
    execute(
        "INSERT INTO tickets (id, title, status) VALUES (?, ?, ?)",
        json.dumps([{"$uuid": str(uuid.uuid4())}, "first", "open"]),
    )
    result = query("SELECT title, status FROM tickets WHERE status = $1", '["open"]')
    assert result["success"] is True
    assert result["data"]["rows"] == [{"title": "first", "status": "open"}]
    assert result["data"]["rowCount"] == 1
    assert result["data"]["columns"] == [{"name": "title"}, {"name": "status"}]
    assert result["meta"]["schema"] == "addon_probe"


def test_db_query_refuses_writes(addons):
    for sql in (
        "UPDATE tickets SET status = 'x'",
        "DELETE FROM tickets",
        "INSERT INTO tickets (title) VALUES ('x')",
        "WITH gone AS (DELETE FROM tickets RETURNING id) SELECT * FROM gone",
        "SELECT 1; DELETE FROM tickets",
        "SELECT * INTO copy FROM tickets",
        "DROP TABLE tickets",
    ):
        result = query(sql)
        assert result["success"] is False, sql
        assert result["error"]["code"] == "invalid_sql", sql


def test_db_query_is_confined_to_granted_tables(addons):
    host_table = "auth_user"
    introspection = "pg_catalog.pg_tables" if connection.vendor == "postgresql" else "sqlite_master"
    for sql in (
        f"SELECT * FROM {host_table}",
        f"SELECT * FROM {introspection}",
        "SELECT * FROM secretdesk.tickets",
        "SELECT * FROM addon_secretdesk.tickets",
        "SELECT * FROM tickets WHERE id IN (SELECT id FROM secretdesk.tickets)",
        f"SELECT * FROM (SELECT * FROM {host_table}) AS u",
        "SELECT * FROM tickets t JOIN metacore_installation i ON 1 = 1",
        "SELECT query_to_xml('select * from auth_user', true, true, '')",
        "SELECT * FROM public.metacore_installation",
    ):
        result = query(sql)
        assert result["success"] is False, sql
        assert result["error"]["code"] == "forbidden", (sql, result)
    granted = query("SELECT count(*) AS n FROM vault.tickets")
    assert granted["success"] is True and granted["data"]["rows"] == [{"n": 0}]
    denials = AuditRecord.objects.filter(kind="sandbox.import", addon="probe", decision="deny")
    assert denials.exists()


def test_db_exec_writes_own_tables_only(addons):
    row_id = str(uuid.uuid4())
    inserted = execute(
        "INSERT INTO tickets (id, title, status) VALUES ($1, $2, $3)",
        json.dumps([{"$uuid": row_id}, "t", "open"]),
    )
    assert inserted == {"success": True, "data": {"rowsAffected": 1}, "meta": inserted["meta"]}
    updated = execute("UPDATE tickets SET status = ? WHERE id = ?", json.dumps(["done", {"$uuid": row_id}]))
    assert updated["data"]["rowsAffected"] == 1
    assert query("SELECT status FROM tickets")["data"]["rows"] == [{"status": "done"}]
    for sql, code in (
        ("UPDATE vault.tickets SET status = 'pwned'", "forbidden"),
        ("DELETE FROM auth_user", "forbidden"),
        ("UPDATE tickets SET status = (SELECT username FROM auth_user)", "forbidden"),
        ("DROP TABLE tickets", "invalid_sql"),
        ("SELECT * FROM tickets", "invalid_sql"),
        ("UPDATE tickets SET status = 'a'; DELETE FROM tickets", "invalid_sql"),
    ):
        result = execute(sql)
        assert result["success"] is False and result["error"]["code"] == code, (sql, result)
    broken = execute("UPDATE tickets SET nope = 1")
    assert broken["success"] is False and broken["error"]["code"] == "db_error"
    assert query("SELECT status FROM tickets")["data"]["rows"] == [{"status": "done"}]


def test_db_args_are_parameters_never_sql(addons):
    execute(
        "INSERT INTO tickets (id, title) VALUES (?, ?)",
        json.dumps([{"$uuid": str(uuid.uuid4())}, "x'); DROP TABLE tickets; --"]),
    )
    rows = query("SELECT title FROM tickets")["data"]["rows"]
    assert rows == [{"title": "x'); DROP TABLE tickets; --"}]
    bad = query("SELECT * FROM tickets WHERE id = ?", '{"not": "a list"}')
    assert bad["error"]["code"] == "arg_decode"
    missing = query("SELECT * FROM tickets WHERE id = ? AND title = ?", '["only one"]')
    assert missing["error"]["code"] == "arg_decode"


def test_env_get_reads_installation_settings(addons):
    assert call("call_env_get", "greeting") == "hello from helpdesk"
    assert call("call_env_get", "missing") is None


def test_log_goes_to_the_addon_log(addons, caplog):
    with caplog.at_level("INFO", logger="metacore.addons.probe"):
        assert call("call_log", "hello host") is None
    assert "hello host" in caplog.text


def test_event_emit_is_gated_and_tenant_scoped(addons):
    received = []
    addon_event.connect(
        lambda sender, event, **kw: received.append(event), weak=False, dispatch_uid="probe-test"
    )
    try:
        ok = call("call_event_emit", "probe.pinged", '{"n": 1}')
        assert ok["success"] is True and ok["data"]["event"] == "probe.pinged"
        denied = call("call_event_emit", "vault.stolen", "{}")
        assert denied["success"] is False and denied["error"]["code"] == "forbidden"
        no_tenant = call("call_event_emit", "probe.pinged", "{}", tenant=None)
        assert no_tenant["error"]["code"] == "no_active_org"
        not_json = call("call_event_emit", "probe.pinged", "{nope")
        assert not_json["error"]["code"] == "invalid_payload"
    finally:
        addon_event.disconnect(dispatch_uid="probe-test")
    assert [(e.addon, e.name, e.tenant, e.payload) for e in received] == [
        ("probe", "probe.pinged", TENANT, {"n": 1})
    ]


FAKE_DNS = {"internal.example.test": "127.0.0.1", "metadata.example.test": "169.254.169.254"}


def fake_resolver(host, port, *args, **kwargs):
    """getaddrinfo for the test: granted names that resolve to internal addresses."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAKE_DNS.get(host, "203.0.113.9"), port))]


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.example.test:9/admin",
        "http://metadata.example.test/latest/meta-data/",
        "http://127.0.0.1:9/admin",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_http_fetch_to_internal_addresses_is_blocked(addons, url, settings):
    settings.METACORE = {
        **getattr(settings, "METACORE", {}),
        "HTTP_RESOLVER": "test_sandbox_host.fake_resolver",
    }
    result = call("call_http_fetch", url, "GET", "")
    assert result["error"] == "forbidden", result
    assert "status" not in result


def test_http_fetch_without_capability_is_denied(addons):
    result = call("call_http_fetch", "https://example.com/", "GET", "")
    assert result["error"] == "forbidden" and "http:fetch" in result["message"]


@pytest.mark.parametrize("export", [e for e in guests.PROBE_EXPORTS if e.startswith("bad_")])
def test_out_of_bounds_pointers_are_guest_errors(addons, export):
    with pytest.raises(BadPointer, match="outside"):
        call(export)
    assert call("echo", "still serving") == "still serving"


def test_raw_sql_is_confined_to_the_calls_tenant(addons):
    other = str(uuid.uuid4())
    row_id = str(uuid.uuid4())
    assert execute("INSERT INTO tickets (id, title) VALUES (?, ?)", json.dumps([{"$uuid": row_id}, "mine"]))[
        "success"
    ]
    assert call("call_db_query", "SELECT title FROM tickets", "[]", tenant=other)["data"]["rows"] == []
    stolen = call(
        "call_db_exec",
        "UPDATE tickets SET title = 'stolen' WHERE id = ?",
        json.dumps([{"$uuid": row_id}]),
        tenant=other,
    )
    assert stolen["data"]["rowsAffected"] == 0
    wiped = call("call_db_exec", "DELETE FROM tickets", "[]", tenant=other)
    assert wiped["data"]["rowsAffected"] == 0
    forged = call(
        "call_db_exec",
        "INSERT INTO tickets (id, title, organization_id) VALUES (?, ?, ?)",
        json.dumps([{"$uuid": str(uuid.uuid4())}, "forged", TENANT]),
        tenant=other,
    )
    assert forged["error"]["code"] == "forbidden"
    assert query("SELECT title FROM tickets")["data"]["rows"] == [{"title": "mine"}]
    assert (
        call("call_db_query", "SELECT title FROM tickets", "[]", tenant=None)["error"]["code"]
        == "no_active_org"
    )


@pytest.fixture
def local_server():
    """A local HTTP server answering JSON (the SSRF guard lets 127.0.0.1 through only when
    METACORE['HTTP_ALLOWED_NETWORKS'] says so, as here)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            reply = json.dumps(
                {"method": "POST", "got": body.decode(), "type": self.headers.get("Content-Type")}
            ).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_fetch_reaches_an_allowed_host(addons, local_server, settings):
    settings.METACORE = {
        **getattr(settings, "METACORE", {}),
        "HTTP_RESOLVER": "test_sandbox_host.fake_resolver",
        "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
    }
    result = call("call_http_fetch", f"http://internal.example.test:{local_server}/hook", "POST", '{"a":1}')
    assert result.get("status") == 201, result
    assert json.loads(result["body"]) == {"method": "POST", "got": '{"a":1}', "type": "application/json"}
    audit = AuditRecord.objects.filter(
        kind="sandbox.import", addon="probe", details__import="http_fetch"
    ).first()
    assert audit is not None and audit.details["status"] == 201


def test_sql_is_read_by_the_postgresql_grammar_itself(addons):
    # PostgreSQL's grammar ends 'a\' at the backslash, so the UNION is seen (and refused);
    # U&"..." UESCAPE spells a function name the allowlist then judges by its real name.
    for sql in (
        "SELECT * FROM tickets WHERE title = 'a\\' UNION SELECT * FROM public.auth_user --'",
        "SELECT U&\"!0070g_read_file\" UESCAPE '!' ('/etc/passwd')",
    ):
        result = query(sql)
        assert result["success"] is False and result["error"]["code"] == "forbidden", (sql, result)
    # a dollar-quoted string is just a string: what runs is deparsed from the checked tree
    assert query("SELECT count(*) AS n FROM tickets WHERE title = $x$ a $x$")["data"]["rows"] == [{"n": 0}]
    # comments are dropped before the statement reaches the database
    assert query("SELECT count(*) AS n FROM tickets -- , auth_user")["data"]["rows"] == [{"n": 0}]


def test_an_organizations_own_settings_reach_its_calls_and_a_change_the_next_one(tmp_path):
    from metacore.installer.management import update_settings

    target = tmp_path / "probe"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(key="probe", name="probe", hooks={}, actions={}, capabilities=[])
    manifest["backend"] = {
        "runtime": "wasm",
        "entry": "backend/helpdesk.wasm",
        "exports": guests.PROBE_EXPORTS,
    }
    (target / "backend" / "helpdesk.wasm").write_bytes(guests.probe())
    (target / "manifest.json").write_text(json.dumps(manifest))
    kernel = get_kernel()
    kernel.installer.install(target, organization=TENANT, settings={"greeting": "hola"})
    try:
        assert call("call_env_get", "greeting") == "hola"
        update_settings(
            kernel.installer,
            kernel.registry,
            kernel.audit,
            "probe",
            {"greeting": "buenas"},
            context=CallContext.system(),
            organization=TENANT,
        )
        assert call("call_env_get", "greeting") == "buenas"
    finally:
        kernel.installer.uninstall("probe", drop_data=True, organization=TENANT)
