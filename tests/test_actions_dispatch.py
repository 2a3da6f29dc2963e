"""Row action triggers end to end over HTTP: noop, webhook (trigger URL and the legacy
`hooks` map), and a wasm action confirmed by its hooks-map webhook, against a real local
receiver that checks upstream's signature."""

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest
import webhook_receiver
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from webhook_receiver import upstream_signature

from metacore.installer.secrets import issue_secret
from metacore.installer.webhooks import sign_request
from metacore.integrations.outbound import signed_path
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, OrganizationInstallation, TenantMembership

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)
receiver = webhook_receiver.receiver  # the local receiver fixture


def test_signature_bytes_match_upstreams_documented_format():
    """upstream security/hmac.go SignWithNonce: HMAC-SHA256(secret,
    "<ts>.<method>.<path>.<nonce>.<hex sha256(body)>"), hex, prefixed "sha256="; the signed
    path keeps the query (webhookdispatch.go signedPath)."""
    body = b'{"event":"order.created","id":42}'
    headers = sign_request(
        "shhh",
        "POST",
        signed_path("http://addon.example/hook?x=1"),
        body,
        timestamp=1_700_000_000,
        nonce="n-1",
    )
    assert headers == {
        "X-Metacore-Timestamp": "1700000000",
        "X-Metacore-Nonce": "n-1",
        # hmac("shhh", "1700000000.POST./hook?x=1.n-1.28c75b2f...d2f3")
        "X-Metacore-Signature": "sha256=5c08ada4e3d29348ea9083bd278588c60ef441fa998132da09c3fcd266b88e00",
    }
    assert (
        hashlib.sha256(body).hexdigest() == "28c75b2fec00b38a0a5aa17e07077ac57ccb5902683963893724dbb7d8e1d2f3"
    )
    assert headers["X-Metacore-Signature"] == upstream_signature(
        "shhh", "1700000000", "POST", "/hook?x=1", "n-1", body
    )
    assert signed_path("http://addon.example") == "/"


@pytest.fixture
def webhook_settings(settings):
    settings.METACORE = {
        **settings.METACORE,
        "HTTP_RESOLVER": "webhook_receiver.resolve",
        "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
        "SECRET_MASTER_KEY": "test-master-key",
        "WEBHOOK_TIMEOUT_S": 1.5,
    }
    return settings


@pytest.fixture
def addon(tmp_path, receiver, webhook_settings):
    """The helpdesk example plus noop, webhook and hooks-map actions aimed at the receiver."""
    target = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["key"] = "hookdesk"
    manifest["backend"]["url"] = receiver.url
    manifest["capabilities"].append(
        {
            "kind": "http:fetch",
            "target": f"receiver.test:{receiver.port}",
            "reason": "the addon's own backend",
        }
    )
    manifest["hooks"].update({"tickets::stamp": "/actions/stamp", "tickets::resolve": "/actions/confirm"})
    manifest["actions"]["tickets"] += [
        {"key": "acknowledge", "label": "Acknowledge", "trigger": {"type": "noop"}},
        {
            "key": "notify",
            "label": "Notify",
            "trigger": {"type": "webhook", "url": f"{receiver.url}/actions/notify?v=2"},
        },
        {"key": "stamp", "label": "Stamp"},
    ]
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    inst = Installation.objects.get(key="hookdesk")
    receiver.secret = issue_secret(inst)
    yield inst
    get_kernel().installer.uninstall("hookdesk", drop_data=True)


@pytest.fixture
def client():
    user = get_user_model().objects.create_superuser(username="agent", password="pw", email="a@example.com")
    TenantMembership.objects.create(user=user, organization_id=uuid.uuid4())
    api = APIClient()
    api.force_authenticate(user)
    api.user = user
    return api


def create_ticket(client, title="Printer on fire"):
    response = client.post("/api/dynamic/tickets", {"title": title}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def act(client, ticket, key, body=None):
    return client.post(f"/api/dynamic/tickets/{ticket['id']}/action/{key}", body or {}, format="json")


def test_noop_action(addon, client, receiver):
    ticket = create_ticket(client)
    response = act(client, ticket, "acknowledge")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "success": True,
        "data": None,
        "meta": {
            "no_op": True,
            "model": "tickets",
            "action": "acknowledge",
            "trigger_type": "noop",
            "rolled_back": False,
        },
    }
    assert receiver.requests == []
    audit = AuditRecord.objects.get(kind="action.dispatch", target="tickets::acknowledge")
    assert audit.details["trigger"] == "noop"


def test_webhook_action_is_signed_and_its_answer_is_the_result(addon, client, receiver):
    ticket = create_ticket(client)
    receiver.routes["/actions/notify"] = (
        200,
        {"success": True, "data": {"notified": 3}, "meta": {"channel": "sms"}},
        0,
    )
    response = act(client, ticket, "notify", {"note": "hi"})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "success": True,
        "data": {"notified": 3},
        "meta": {
            "channel": "sms",
            "model": "tickets",
            "action": "notify",
            "trigger_type": "webhook",
            "rolled_back": False,
        },
    }
    [request] = receiver.requests
    assert request["verified"] is True
    assert request["path"] == "/actions/notify?v=2"
    headers = request["headers"]
    org = str(TenantMembership.objects.get(user=client.user).organization_id)
    assert headers["X-Metacore-Installation-ID"] == str(addon.pk)
    assert headers["X-Metacore-Event"] == "tickets::notify"
    assert headers["X-Metacore-Host"] == "metacore"
    assert headers["X-Metacore-Tenant"] == org
    assert headers["Content-Type"] == "application/json"
    body = request["json"]
    assert body["record_id"] == ticket["id"] and body["payload"] == {"note": "hi"}
    assert (
        body["hook"] == "tickets::notify"
        and body["org_id"] == org
        and body["row"]["title"] == "Printer on fire"
    )
    audit = AuditRecord.objects.get(kind="action.dispatch", target="tickets::notify")
    assert audit.details["status"] == 200 and audit.details["signed"] is True


def test_hooks_map_action_and_plain_answers(addon, client, receiver):
    ticket = create_ticket(client)
    receiver.routes["/actions/stamp"] = (201, b"stamped", 0)
    response = act(client, ticket, "stamp")
    assert response.status_code == 200, response.content
    assert response.json()["data"] == "stamped"
    assert response.json()["meta"]["trigger_type"] == "webhook"
    assert receiver.requests[0]["path"] == "/actions/stamp" and receiver.requests[0]["verified"] is True

    receiver.routes["/actions/stamp"] = (
        409,
        {"success": False, "error": {"code": "already_stamped", "message": "no"}},
        0,
    )
    declined = act(client, ticket, "stamp")
    assert declined.status_code == 422
    assert declined.json()["error"] == {"code": "already_stamped", "message": "no"}
    receiver.routes["/actions/stamp"] = (500, b"boom", 0)
    failed = act(client, ticket, "stamp")
    assert failed.status_code == 422 and failed.json()["error"]["code"] == "webhook_declined"
    assert "500" in failed.json()["error"]["message"]


def test_wasm_action_confirmed_by_its_hook_rolls_back_when_the_webhook_declines(addon, client, receiver):
    ticket = create_ticket(client)
    receiver.routes["/actions/confirm"] = (
        200,
        {"success": False, "error": {"code": "pac_refused", "message": "RFC"}},
        0,
    )
    declined = act(client, ticket, "resolve", {"resolution": "done"})
    assert declined.status_code == 422, declined.content
    assert (
        declined.json()["meta"]["rolled_back"] is True and declined.json()["error"]["code"] == "pac_refused"
    )
    row = client.get(f"/api/dynamic/tickets/{ticket['id']}").json()["data"]
    assert row["status"] == "open" and row["resolution"] is None  # the export's db_exec was rolled back

    receiver.routes["/actions/confirm"] = (200, b"", 0)
    accepted = act(client, ticket, "resolve", {"resolution": "done"})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["data"] == {"id": ticket["id"], "status": "resolved"}
    assert client.get(f"/api/dynamic/tickets/{ticket['id']}").json()["data"]["status"] == "resolved"


def test_unreachable_slow_and_forbidden_receivers(addon, client, receiver, webhook_settings):
    ticket = create_ticket(client)
    receiver.routes["/actions/notify"] = (200, {"success": True}, 3)
    slow = act(client, ticket, "notify")
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout"
    receiver.close()
    down = act(client, ticket, "notify")
    assert down.status_code == 502 and down.json()["error"]["code"] == "webhook_unreachable"
    # without the explicit allowance the guard's default refuses loopback
    webhook_settings.METACORE = {**webhook_settings.METACORE, "HTTP_ALLOWED_NETWORKS": []}
    blocked = act(client, ticket, "notify")
    assert blocked.status_code == 403, blocked.content


def test_an_organization_with_its_own_installation_signs_with_its_own_secret(addon, client, receiver):
    """An organization that installed the addon itself holds its own secret: its calls are
    signed with it, and the host-wide secret no longer verifies them."""
    org = str(TenantMembership.objects.get(user=client.user).organization_id)
    own = OrganizationInstallation.objects.create(installation=addon, organization=org)
    host_wide, receiver.secret = receiver.secret, issue_secret(own)
    assert receiver.secret != host_wide
    receiver.routes["/actions/notify"] = (200, {"success": True, "data": None}, 0)
    response = act(client, create_ticket(client), "notify")
    assert response.status_code == 200, response.content
    [request] = receiver.requests
    assert request["verified"] is True
