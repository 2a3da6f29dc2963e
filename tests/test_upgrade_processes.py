"""A second server process (a real Daphne of the sandbox project, on the test database)
serves the upgraded schema on its very next request after the upgrade commits, and keeps
serving the old one, whole, when an upgrade fails."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel
from metacore.models import TenantMembership
from tests.livekit import Daphne
from tests.test_upgrade import KEY, TICKETS_V1, column, write_bundle

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    get_kernel().installer.install(write_bundle(tmp_path, "1.0.0", TICKETS_V1))
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    TenantMembership.objects.create(
        user=admin, organization_id=uuid.uuid4()
    )  # the tables are per organization
    token = Token.objects.create(user=admin).key
    (daphne,) = Daphne.start(log_dir=tmp_path)
    yield daphne, token
    daphne.terminate()
    get_kernel().installer.uninstall(KEY, drop_data=True)


def test_other_process_serves_the_new_schema_on_its_next_request(tmp_path, server):
    daphne, token = server
    status, body = daphne.request("POST", f"/api/dynamic/{KEY}.tickets", token, {"subject": "before"})
    assert status == 201, body
    status, body = daphne.request("GET", f"/api/dynamic/{KEY}.tickets", token)
    assert status == 200 and "due_at" not in body["data"][0]

    get_kernel().installer.upgrade(
        write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    )

    status, body = daphne.request("GET", f"/api/dynamic/{KEY}.tickets", token)
    assert status == 200, body
    assert body["data"][0]["subject"] == "before" and body["data"][0]["due_at"] is None
    status, body = daphne.request(
        "POST", f"/api/dynamic/{KEY}.tickets", token, {"subject": "after", "due_at": "2026-12-01T10:00:00Z"}
    )
    assert status == 201, body
    assert body["data"]["due_at"].startswith("2026-12-01T10:00:00")


def test_other_process_keeps_the_old_schema_after_a_failed_upgrade(tmp_path, server, monkeypatch):
    daphne, token = server
    daphne.request("POST", f"/api/dynamic/{KEY}.tickets", token, {"subject": "kept"})

    def failing_hook(sandbox, installation, bundle, hook_name, context):
        raise RuntimeError("hook failed after the DDL")

    monkeypatch.setattr("metacore.installer.upgrade.run_lifecycle_hook", failing_hook)
    with pytest.raises(MetacoreError):
        get_kernel().installer.upgrade(
            write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
        )

    status, body = daphne.request("GET", f"/api/dynamic/{KEY}.tickets", token)
    assert status == 200, body
    assert [row["subject"] for row in body["data"]] == ["kept"] and "due_at" not in body["data"][0]
    status, body = daphne.request(
        "POST", f"/api/dynamic/{KEY}.tickets", token, {"subject": "x", "due_at": "2026-12-01"}
    )
    assert status == 400 and "due_at" in str(body)
