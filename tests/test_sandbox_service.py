"""The example addon end to end: installed with its wasm backend, actions over HTTP with
db_exec writes kept or rolled back with the action, event_emit reaching the bus, lifecycle
hooks inside the installer's transaction, and metacore_call."""

import json
import shutil
import uuid
from pathlib import Path

import pytest
import sandbox_guests as guests
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from metacore.context import CallContext
from metacore.events import addon_event
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, TenantMembership
from metacore.schema.ddl import table_exists

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def drop_helpdesk():
    """Transactional tests flush rows, not the tables an install created: drop them."""
    yield
    if Installation.objects.filter(key="helpdesk").exclude(state="uninstalled").exists():
        get_kernel().installer.uninstall("helpdesk", drop_data=True)


@pytest.fixture
def helpdesk():
    get_kernel().installer.install(EXAMPLE)
    return Installation.objects.get(key="helpdesk")


def make_user(name, *, superuser=True, org=None):
    user_model = get_user_model()
    create = user_model.objects.create_superuser if superuser else user_model.objects.create_user
    user = create(username=name, password="pw", email=f"{name}@example.com")
    TenantMembership.objects.create(user=user, organization_id=org or uuid.uuid4())
    return user


@pytest.fixture
def client():
    api = APIClient()
    api.force_authenticate(make_user("agent"))
    return api


@pytest.fixture
def events():
    received = []

    def receiver(sender, event, **kwargs):
        received.append(event)

    addon_event.connect(receiver, weak=False)
    yield received
    addon_event.disconnect(receiver)


def create_ticket(client, title="Printer on fire"):
    response = client.post("/api/dynamic/tickets", {"title": title}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def test_action_runs_writes_and_emits(helpdesk, client, events):
    ticket = create_ticket(client)
    response = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve",
        {"resolution": "turned it off and on"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "success": True,
        "data": {"id": ticket["id"], "status": "resolved"},
        "meta": {"model": "tickets", "action": "resolve", "trigger_type": "wasm", "rolled_back": False},
    }
    row = client.get(f"/api/dynamic/tickets/{ticket['id']}").json()["data"]
    assert row["status"] == "resolved" and row["resolution"] == "turned it off and on"
    assert [(e.addon, e.name, e.payload) for e in events] == [
        ("helpdesk", "helpdesk.ticket_resolved", {"id": ticket["id"]})
    ]
    assert events[0].tenant == str(TenantMembership.objects.get(user__username="agent").organization_id)
    audit = AuditRecord.objects.filter(kind="sandbox.call", addon="helpdesk", target="resolve").first()
    assert audit is not None and audit.details["outcome"] == "ok" and audit.details["fuel"] > 0
    assert AuditRecord.objects.filter(
        kind="sandbox.import", addon="helpdesk", details__import="db_exec"
    ).exists()


def test_declined_action_rolls_back_its_writes_and_events(helpdesk, client, events):
    ticket = create_ticket(client)
    response = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/escalate",
        {"resolution": "customer shouted"},
        format="json",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "escalation_refused"
    assert body["meta"] == {
        "model": "tickets",
        "action": "escalate",
        "trigger_type": "wasm",
        "rolled_back": True,
    }
    row = client.get(f"/api/dynamic/tickets/{ticket['id']}").json()["data"]
    assert row["status"] == "open" and row["resolution"] is None
    assert events == []


def test_action_input_errors(helpdesk, client):
    ticket = create_ticket(client)
    missing = client.post(f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {}, format="json")
    assert missing.status_code == 400 and "resolution" in missing.json()["errors"]
    unknown = client.post(f"/api/dynamic/tickets/{ticket['id']}/action/explode", {}, format="json")
    assert unknown.status_code == 404
    no_row = client.post(
        f"/api/dynamic/tickets/{uuid.uuid4()}/action/resolve", {"resolution": "x"}, format="json"
    )
    assert no_row.status_code == 404


def test_action_needs_update_permission_and_own_tenant(helpdesk, client):
    ticket = create_ticket(client)
    reader = APIClient()
    reader.force_authenticate(make_user("reader", superuser=False))
    denied = reader.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "x"}, format="json"
    )
    assert denied.status_code == 403 and "tickets.update" in denied.json()["message"]
    anonymous = APIClient().post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "x"}, format="json"
    )
    assert anonymous.status_code == 401
    other_tenant = APIClient()
    other_tenant.force_authenticate(make_user("stranger"))
    hidden = other_tenant.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "x"}, format="json"
    )
    assert hidden.status_code == 404


def test_install_hook_ran_and_summary_reads_own_table(helpdesk, client):
    hook = AuditRecord.objects.filter(kind="sandbox.call", addon="helpdesk", target="on_install").first()
    assert hook is not None and {"stream": "log", "message": "helpdesk installed"} in hook.details["logs"]
    create_ticket(client, "one")
    create_ticket(client, "two")
    other = APIClient()
    other.force_authenticate(make_user("elsewhere"))
    create_ticket(other, "another tenant's")
    tenant = str(TenantMembership.objects.get(user__username="agent").organization_id)
    result = get_kernel().sandbox.call("helpdesk", "summary", {}, CallContext(tenant=tenant))
    assert result["success"] is True
    assert result["data"]["rows"] == [{"status": "open", "n": 2}]
    assert result["data"]["rowCount"] == 1 and result["data"]["columns"] == [
        {"name": "status"},
        {"name": "n"},
    ]
    no_tenant = get_kernel().sandbox.call("helpdesk", "summary", {})
    assert no_tenant["success"] is False and no_tenant["error"]["code"] == "no_active_org"


def test_only_listed_exports_are_callable(helpdesk):
    from metacore.sandbox.errors import ExportNotAllowed

    with pytest.raises(ExportNotAllowed):
        get_kernel().sandbox.call("helpdesk", "alloc", {})


def test_metacore_call_command(helpdesk, capsys):
    call_command("metacore_call", "helpdesk", "echo", "--data", '{"ping": 1}')
    assert json.loads(capsys.readouterr().out) == {"ping": 1}
    with pytest.raises(CommandError, match="not listed"):
        call_command("metacore_call", "helpdesk", "nope", "--data", "{}")
    with pytest.raises(CommandError, match="JSON"):
        call_command("metacore_call", "helpdesk", "echo", "--data", "{nope")
    with pytest.raises(CommandError, match="not installed"):
        call_command("metacore_call", "ghost", "echo")


def bundle_with(tmp_path, wasm, **manifest_changes):
    """A copy of the example bundle with another module (and manifest tweaks)."""
    target = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, target)
    (target / "backend" / "helpdesk.wasm").write_bytes(wasm)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(manifest_changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_failing_install_hook_rolls_the_install_back(tmp_path):
    failing = guests.returning(
        b'{"success":false,"error":{"code":"nope","message":"not today"}}', "on_install"
    )
    bundle = bundle_with(
        tmp_path,
        failing,
        backend={"runtime": "wasm", "entry": "backend/helpdesk.wasm", "exports": ["on_install"]},
        actions={},
    )
    with pytest.raises(Exception, match="not today"):
        get_kernel().installer.install(bundle)
    assert not Installation.objects.filter(key="helpdesk").exclude(state="uninstalled").exists()
    assert not table_exists("helpdesk", "tickets")


def test_trapping_install_hook_rolls_the_install_back(tmp_path):
    trapping = guests.module('(func (export "on_install") (param i32 i32) (result i64) unreachable)')
    bundle = bundle_with(
        tmp_path,
        trapping,
        backend={"runtime": "wasm", "entry": "backend/helpdesk.wasm", "exports": ["on_install"]},
        actions={},
    )
    with pytest.raises(Exception, match="unreachable"):
        get_kernel().installer.install(bundle)
    assert not table_exists("helpdesk", "tickets")


def test_module_with_forbidden_import_is_refused_at_install(tmp_path):
    bundle = bundle_with(
        tmp_path,
        guests.forbidden_import(),
        backend={"runtime": "wasm", "entry": "backend/helpdesk.wasm", "exports": ["run"]},
        actions={},
        hooks={},
    )
    with pytest.raises(Exception, match=r"env\.system"):
        get_kernel().installer.install(bundle)
    assert not Installation.objects.filter(key="helpdesk").exclude(state="uninstalled").exists()


def test_trapping_action_answers_the_action_envelope_and_rolls_back(tmp_path, client, events):
    trapping = guests.module(
        '(func (export "resolve") (param i32 i32) (result i64) unreachable)'
        '(func (export "escalate") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0))'
    )
    manifest = json.loads((EXAMPLE / "manifest.json").read_text())
    backend = {**manifest["backend"], "exports": ["resolve", "escalate"], "timeout_ms": 200}
    get_kernel().installer.install(bundle_with(tmp_path, trapping, backend=backend, hooks={}))
    ticket = create_ticket(client)
    trapped = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "x"}, format="json"
    )
    assert trapped.status_code == 422
    assert trapped.json()["error"] == {"code": "trap", "message": "resolve trapped: unreachable"}
    assert trapped.json()["meta"]["rolled_back"] is True
    slow = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/escalate", {"resolution": "x"}, format="json"
    )
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout"
    failed = AuditRecord.objects.filter(kind="sandbox.call", addon="helpdesk", target="resolve").first()
    assert failed.details["outcome"] == "trap"


def test_v3_contribution_actions_are_found():
    from addon_fixtures import OWN_FIXTURES

    from metacore.manifest.parse import load_manifest
    from metacore.sandbox.service import find_action

    manifest = load_manifest(json.loads((OWN_FIXTURES / "library" / "manifest.json").read_text()))
    spec = manifest.model("Book")
    action = find_action(manifest, spec, "lend")
    assert action is not None and action.handler_type == "wasm" and action.function == "Lend"
    assert "Lend" in manifest.backend.exports
    assert find_action(manifest, spec, "explode") is None


def test_non_json_output_is_a_bad_result(tmp_path):
    from metacore.sandbox.errors import BadResult

    wasm = guests.returning(b"<html>not json</html>", "echo")
    manifest = json.loads((EXAMPLE / "manifest.json").read_text())
    get_kernel().installer.install(
        bundle_with(
            tmp_path, wasm, backend={**manifest["backend"], "exports": ["echo"]}, hooks={}, actions={}
        )
    )
    with pytest.raises(BadResult, match="not JSON"):
        get_kernel().sandbox.call("helpdesk", "echo", {})
    assert AuditRecord.objects.filter(kind="sandbox.call", target="echo", details__outcome="ok").exists()


def test_calls_are_traced_and_metered(helpdesk, otel):
    assert get_kernel().sandbox.call("helpdesk", "echo", {"x": 1}) == {"x": 1}
    spans = otel.spans("metacore.sandbox.call")
    assert len(spans) == 1
    attributes = dict(spans[0].attributes)
    assert attributes["metacore.addon"] == "helpdesk" and attributes["metacore.function"] == "echo"
    assert attributes["metacore.outcome"] == "ok" and attributes["metacore.fuel"] > 0
    fuel = otel.metric_points("metacore.sandbox.call.fuel")
    assert fuel and fuel[0].sum > 0
    assert otel.metric_points("metacore.sandbox.call.duration")


def test_failing_disable_hook_keeps_the_addon_enabled(tmp_path):
    wasm = guests.module(
        guests.ECHO
        + """
  (data (i32.const 800) "{\\"success\\":false,\\"error\\":{\\"code\\":\\"busy\\",\\"message\\":\\"tickets still open\\"}}")
  (func (export "on_disable") (param i32 i32) (result i64) (call $pack (i32.const 800) (i32.const 72)))"""
    )
    manifest = json.loads((EXAMPLE / "manifest.json").read_text())
    backend = {**manifest["backend"], "exports": ["echo", "on_disable"]}
    get_kernel().installer.install(bundle_with(tmp_path, wasm, backend=backend, hooks={}, actions={}))
    with pytest.raises(Exception, match="tickets still open"):
        get_kernel().installer.disable("helpdesk")
    assert Installation.objects.get(key="helpdesk").state == "enabled"
