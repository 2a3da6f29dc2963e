"""Tools from a manifest's tools[]: listed, validated as upstream's tool/validator.go (400
naming the parameter), dispatched to HTTP (signed) or wasm, audited."""

import json
import shutil
import uuid
from pathlib import Path

import pytest
import webhook_receiver
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from metacore.installer.secrets import issue_secret
from metacore.integrations.tools import input_params, validate
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, TenantMembership
from tests.installations import record_change

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)
receiver = webhook_receiver.receiver  # the local receiver fixture

LOOKUP = {
    "id": "lookup",
    "name": "Lookup taxpayer",
    "description": "Find a taxpayer",
    "endpoint": "/tools/lookup",
    "input_schema": [
        {
            "name": "rfc",
            "type": "string",
            "required": True,
            "normalize": "uppercase",
            "validation": "^[A-Z]{3,4}[0-9]{6}$",
        },
        {"name": "amount", "type": "number"},
        {"name": "email", "type": "email"},
        {"name": "when", "type": "date", "default_value": "2026-01-01"},
        {"name": "notify", "type": "boolean"},
    ],
}
ECHO = {
    "id": "echo_tool",
    "description": "Echo",
    "handler": {"type": "wasm", "function": "echo"},
    "input_schema": {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["q"],
    },
}


def test_validator_rules():
    params = input_params(LOOKUP["input_schema"])
    cleaned, errors = validate(params, {"rfc": " abc010203 ", "amount": 12.5, "notify": "TRUE", "extra": 1})
    assert errors == {} and cleaned == {
        "rfc": "ABC010203",
        "amount": 12.5,
        "when": "2026-01-01",
        "notify": True,
    }
    _, errors = validate(
        params, {"rfc": "", "amount": "abc", "email": "nope", "when": "31/12/2026", "notify": "maybe"}
    )
    assert set(errors) == {"rfc", "amount", "email", "when", "notify"} and errors["rfc"] == ["required"]
    assert validate(params, {"rfc": "x1"})[1] == {"rfc": ["does not match pattern"]}
    assert input_params(ECHO["input_schema"]) == (
        {"name": "q", "type": "string", "description": "", "required": True},
        {"name": "n", "type": "number", "description": "", "required": False},
    )


@pytest.fixture
def toolbox(tmp_path, receiver, settings):
    settings.METACORE = {
        **settings.METACORE,
        "HTTP_RESOLVER": "webhook_receiver.resolve",
        "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
        "SECRET_MASTER_KEY": "test-master-key",
    }
    target = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(key="toolbox", tools=[LOOKUP, ECHO])
    manifest["backend"]["url"] = receiver.url
    manifest["capabilities"].append({"kind": "http:fetch", "target": f"receiver.test:{receiver.port}"})
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    receiver.secret = issue_secret(Installation.objects.get(key="toolbox"))
    yield
    get_kernel().installer.uninstall("toolbox", drop_data=True)


@pytest.fixture
def client():
    user = get_user_model().objects.create_user(username="agent", password="pw")
    TenantMembership.objects.create(user=user, organization_id=uuid.uuid4())
    api = APIClient()
    api.force_authenticate(user)
    api.org = str(user.metacore_membership.organization_id)
    return api


def execute(client, tool_id, parameters, addon="toolbox"):
    return client.post(
        "/api/metacore/tools/execute",
        {"addon_key": addon, "tool_id": tool_id, "parameters": parameters},
        format="json",
    )


def test_tools_are_listed(toolbox, client):
    listed = client.get("/api/metacore/tools").json()
    assert [(t["addon_key"], t["id"]) for t in listed] == [("toolbox", "echo_tool"), ("toolbox", "lookup")]
    assert listed[1]["endpoint"] == "/tools/lookup" and listed[1]["input_schema"][0]["name"] == "rfc"
    assert client.get("/api/metacore/tools", {"addon_key": "ghost"}).json() == []
    inst = Installation.objects.get(key="toolbox")
    inst.selected_tools = ["lookup"]
    record_change(inst)
    assert [t["id"] for t in client.get("/api/metacore/tools").json()] == ["lookup"]


def test_http_tool_runs_signed_with_cleaned_parameters(toolbox, client, receiver):
    receiver.routes["/tools/lookup"] = (
        200,
        {"success": True, "data": {"name": "ACME"}, "metadata": {"cached": False}},
        0,
    )
    response = execute(client, "lookup", {"rfc": " abc010203 ", "amount": "12.50", "email": "a@b.co"})
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "data": {"name": "ACME"}, "metadata": {"cached": False}}
    [request] = receiver.requests
    assert request["verified"] is True and request["headers"]["X-Metacore-Event"] == "tool:lookup"
    assert request["json"]["parameters"] == {
        "rfc": "ABC010203",
        "amount": 12.5,
        "email": "a@b.co",
        "when": "2026-01-01",
    }
    assert request["json"]["org_id"] == client.org and request["json"]["tool_id"] == "lookup"
    audit = AuditRecord.objects.get(kind="tool.execute")
    assert audit.target == "lookup" and audit.details["outcome"] == "ok"


def test_bad_input_is_a_400_naming_the_field(toolbox, client, receiver):
    bad = execute(client, "lookup", {"rfc": "ABC010203", "amount": "lots"})
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["amount"]
    assert "amount" in bad.json()["message"]
    missing = execute(client, "lookup", {})
    assert missing.status_code == 400 and missing.json()["errors"] == {"rfc": ["required"]}
    assert client.post("/api/metacore/tools/execute", {"tool_id": "lookup"}, format="json").json()[
        "errors"
    ] == {"addon_key": ["required"]}
    assert execute(client, "lookup", "not an object").status_code == 400
    assert execute(client, "nope", {}).status_code == 404
    assert receiver.requests == []


def test_wasm_tool_and_unreachable_addon(toolbox, client, receiver):
    echoed = execute(client, "echo_tool", {"q": "hi", "n": "3"})
    assert echoed.status_code == 200, echoed.content
    assert echoed.json()["success"] is True and echoed.json()["data"]["parameters"] == {"q": "hi", "n": 3}
    receiver.close()
    down = execute(client, "lookup", {"rfc": "ABC010203"})
    assert down.status_code == 502 and down.json()["success"] is False


def test_idempotency_key_runs_a_tool_once(toolbox, client, receiver):
    receiver.routes["/tools/lookup"] = (200, {"success": True, "data": {"name": "ACME"}}, 0)
    body = {"addon_key": "toolbox", "tool_id": "lookup", "parameters": {"rfc": "ABC010203"}}
    first = client.post("/api/metacore/tools/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/metacore/tools/execute", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 200, first.content
    assert again.json() == first.json() and again["Idempotent-Replay"] == "true"
    assert len(receiver.requests) == 1
    other = {**body, "parameters": {"rfc": "XYZ010203"}}
    reused = client.post("/api/metacore/tools/execute", other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["errors"]
    assert reused.json()["code"] == "idempotency_key_reused"
    fresh = client.post("/api/metacore/tools/execute", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert fresh.status_code == 200 and "Idempotent-Replay" not in fresh
    assert len(receiver.requests) == 2


def test_idempotency_key_does_not_keep_a_failure(toolbox, client, receiver):
    body = {"addon_key": "toolbox", "tool_id": "lookup", "parameters": {"rfc": "ABC010203"}}
    receiver.routes["/tools/lookup"] = (200, {"success": True, "data": {}}, 0)
    bad = client.post(
        "/api/metacore/tools/execute", {**body, "parameters": {}}, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert bad.status_code == 400
    again = client.post(
        "/api/metacore/tools/execute", {**body, "parameters": {}}, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert again.status_code == 400 and "Idempotent-Replay" not in again and receiver.requests == []
