"""Inbound webhooks: verified (upstream's signature, timestamp window, nonce once) before the
declared export runs or the declared event is published."""

import json
import shutil
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from metacore.events import addon_event
from metacore.installer.secrets import issue_secret
from metacore.installer.webhooks import sign_request
from metacore.kernel import get_kernel
from metacore.models import Installation

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret(tmp_path, settings):
    settings.METACORE = {**settings.METACORE, "SECRET_MASTER_KEY": "test-master-key"}
    target = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["webhooks"] = [
        {"key": "ping", "function": "echo"},
        {"key": "external", "event": "helpdesk.external_ping"},
        {"key": "foreign", "event": "billing.paid"},
    ]
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    yield issue_secret(Installation.objects.get(key="helpdesk"))
    get_kernel().installer.uninstall("helpdesk", drop_data=True)


def post(path, body, headers):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return APIClient().generic("POST", path, body, content_type="application/json", **extra)


def test_signed_request_runs_the_export_once(secret):
    path, body = "/api/metacore/webhooks/in/helpdesk/ping", b'{"amount": 42}'
    headers = sign_request(secret, "POST", path, body)
    response = post(path, body, headers)
    assert response.status_code == 200, response.content
    assert response.json() == {"webhook": "ping", "body": {"amount": 42}, "content_type": "application/json"}
    replayed = post(path, body, headers)
    assert replayed.status_code == 401 and "replayed" in replayed.json()["message"]


def test_unverified_requests_are_refused(secret):
    path, body = "/api/metacore/webhooks/in/helpdesk/ping", b'{"amount": 42}'
    assert post(path, body, {}).status_code == 401
    assert post(path, b'{"amount": 43}', sign_request(secret, "POST", path, body)).status_code == 401
    assert post(path, body, sign_request("wrong", "POST", path, body)).status_code == 401
    assert (
        post(path, body, sign_request(secret, "POST", path, body, timestamp=time.time() - 3600)).status_code
        == 401
    )
    other = "/api/metacore/webhooks/in/helpdesk/external"
    assert (
        post(other, body, sign_request(secret, "POST", path, body)).status_code == 401
    )  # signed for another path
    assert post("/api/metacore/webhooks/in/helpdesk/nope", body, {}).status_code == 404
    assert post("/api/metacore/webhooks/in/ghost/ping", body, {}).status_code == 404


def test_event_hook_publishes_within_the_addons_capability(secret):
    received = []

    def receiver(sender, event, **kwargs):
        received.append(event)

    addon_event.connect(receiver, weak=False)
    try:
        path, body = "/api/metacore/webhooks/in/helpdesk/external", b'{"id": 7}'
        response = post(path, body, sign_request(secret, "POST", path, body))
        assert response.status_code == 202, response.content
        assert [(e.addon, e.name, e.payload) for e in received] == [
            ("helpdesk", "helpdesk.external_ping", {"id": 7})
        ]
        path = "/api/metacore/webhooks/in/helpdesk/foreign"
        denied = post(path, body, sign_request(secret, "POST", path, body))
        assert denied.status_code == 403 and len(received) == 1
    finally:
        addon_event.disconnect(receiver)
