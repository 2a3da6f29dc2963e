"""End to end: the official `@asteby/metacore-sdk` MarketplaceClient (npm registry, Node 20)
against a live Daphne server of the sandbox project sharing the test database."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

import metacore
from metacore.kernel import get_kernel
from metacore.models import Installation
from tests.conftest import ROOT
from tests.livekit import Daphne
from tests.livekit import test_database_url as database_url
from tests.management_bundles import helpdesk_manifest, unsigned_archive, write_source

NODE_DIR = ROOT / "tests" / "node"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session")
def node():
    """Node and tests/node/node_modules (`npm ci` from the lock file when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 20 and npm are required for the SDK end-to-end test"
    if not (NODE_DIR / "node_modules" / "@asteby" / "metacore-sdk" / "dist" / "client.js").is_file():
        run = subprocess.run([npm, "ci"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"npm ci failed in {NODE_DIR}: {run.stderr[-2000:]}"
    return node


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A Daphne server whose catalog holds one unsigned helpdesk bundle (the sandbox project
    allows unsigned bundles)."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    unsigned_archive(write_source(tmp_path / "src", helpdesk_manifest()), catalog / "helpdesk-1.0.0.tar.gz")
    monkeypatch.setenv("METACORE_BUNDLE_DIR", str(catalog))
    [daphne] = Daphne.start(log_dir=tmp_path)
    yield daphne
    daphne.terminate()
    installer = get_kernel().installer
    for row in Installation.objects.all():  # addon tables outlive the test database flush
        installer.uninstall(row.key, drop_data=True)


def test_marketplace_client_against_live_server(server, node):
    admin = User.objects.create_user("sdk-admin", is_staff=True, is_superuser=True)
    token = Token.objects.create(user=admin).key
    env = {**os.environ, "METACORE_HTTP": server.url, "METACORE_TOKEN": token, "METACORE_ADDON": "helpdesk"}
    run = subprocess.run(
        [node, "marketplace_probe.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, (run.stdout, run.stderr, server.output())
    steps = json.loads(run.stdout)

    [entry] = steps["catalog"]
    assert entry["manifest"]["key"] == "helpdesk"
    assert (entry["installable"], entry["entitled"], entry["installed"], entry["enabled"]) == (
        True,
        True,
        False,
        False,
    )
    assert steps["detail"]["manifest"]["version"] == "1.0.0"

    installed = steps["install"]
    assert (installed["addon_key"], installed["version"], installed["status"]) == (
        "helpdesk",
        "1.0.0",
        "enabled",
    )
    assert installed["settings"]["greeting"] == "from node" and len(installed["secret"]) == 64
    assert [i["addon_key"] for i in steps["installed"]] == ["helpdesk"]
    assert "secret" not in steps["installed"][0]

    assert steps["disable"]["status"] == "disabled"
    assert steps["manifestsWhileDisabled"] == []
    assert steps["enable"]["status"] == "enabled"
    assert steps["updateSettings"]["settings"] == {"greeting": "updated", "sla_hours": 8}

    [group] = steps["navigation"]
    assert group["target"] == "sidebar.operations"
    assert [item.get("url") for item in group["items"]] == ["/m/tickets", "/help"]

    [manifest] = steps["manifests"]
    assert manifest["key"] == "helpdesk" and manifest["model_definitions"][0]["table_name"] == "tickets"
    [lite] = steps["manifestsLite"]
    assert "model_definitions" not in lite and lite["frontend"]["entry"] == "remoteEntry.js"

    assert steps["uninstall"] is None  # 204
    assert steps["installedAfter"] == []
    assert steps["enableAfterUninstall"] == {
        "name": "MarketplaceError",
        "status": 404,
        "isMarketplaceError": True,
    }
    assert not Installation.objects.filter(key="helpdesk").exists()

    request = urllib.request.Request(
        f"{server.url}/api/metacore/manifests", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Metacore-Kernel-Version"] == metacore.KERNEL_VERSION


VERIFY_IN_ANOTHER_PROCESS = """
import json, sys, django
django.setup()
from metacore.installer import webhooks
from metacore.installer.errors import WebhookRejected
secret = sys.argv[1]
for headers in json.loads(sys.argv[2]):
    try:
        webhooks.verify_request(secret, "POST", "/hook", b"payload", headers, scope="hooks")
        print("accepted")
    except WebhookRejected as exc:
        print(exc.message)
"""


def test_webhook_replay_refused_across_processes():
    """A nonce accepted here is refused by another process, and the other way round."""
    from metacore.installer import webhooks
    from metacore.installer.errors import WebhookRejected

    secret = "ab" * 32
    here = webhooks.sign_request(secret, "POST", "/hook", b"payload")
    there = webhooks.sign_request(secret, "POST", "/hook", b"payload")
    webhooks.verify_request(secret, "POST", "/hook", b"payload", here, scope="hooks")

    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "sandbox_project.settings"}
    run = subprocess.run(
        [sys.executable, "-c", VERIFY_IN_ANOTHER_PROCESS, secret, json.dumps([here, there])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    replayed, accepted = run.stdout.strip().splitlines()
    assert "replayed" in replayed and accepted == "accepted"
    with pytest.raises(WebhookRejected, match="replayed"):
        webhooks.verify_request(secret, "POST", "/hook", b"payload", there, scope="hooks")
