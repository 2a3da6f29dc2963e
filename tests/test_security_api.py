"""`/api/metacore/enforcer` and the admin: staff flip the enforcer mode, audited."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from metacore.models import AuditRecord, EnforcerMode
from tests.installations import record_installation

pytestmark = pytest.mark.django_db
URL = "/api/metacore/enforcer"


@pytest.fixture
def staff():
    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def tickets():
    return record_installation("tickets")


def test_staff_read_and_flip_modes(staff, tickets):
    response = staff.get(URL)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"default": "enforce", "global": None, "effective": "enforce", "overrides": {}},
    }

    response = staff.post(URL, {"mode": "shadow"}, format="json")
    assert response.status_code == 200 and response.json()["data"]["effective"] == "shadow"
    response = staff.post(URL + "/", {"mode": "enforce", "addon": "tickets"}, format="json")
    assert response.json()["data"]["overrides"] == {"tickets": "enforce"}
    assert dict(EnforcerMode.objects.values_list("addon_key", "mode")) == {"": "shadow", "tickets": "enforce"}
    changes = AuditRecord.objects.filter(kind="enforcer.mode_changed")
    ops = str(get_user_model().objects.get(username="ops").pk)  # the audit actor is the user id
    assert sorted(changes.values_list("target", "actor")) == [("global", ops), ("tickets", ops)]

    response = staff.post(URL, {"addon": "tickets", "clear": True}, format="json")
    assert response.status_code == 200 and response.json()["data"]["overrides"] == {}


@pytest.mark.parametrize(
    "body,field",
    [
        ({"mode": "lenient"}, "mode"),
        ({}, "mode"),
        ({"clear": True}, "clear"),
        ({"addon": "x" * 65, "mode": "shadow"}, "addon"),
    ],
)
def test_bad_input_is_an_envelope(staff, body, field):
    response = staff.post(URL, body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False and field in payload["errors"]


@pytest.mark.parametrize("addon,status", [("../x", 400), ("Tickets\n", 400), ("nobody", 404)])
def test_an_override_must_name_an_installed_addon(staff, addon, status):
    response = staff.post(URL, {"mode": "shadow", "addon": addon}, format="json")
    assert response.status_code == status
    payload = response.json()
    assert payload["success"] is False and "addon" in payload["errors"]
    assert (
        not EnforcerMode.objects.exists()
        and not AuditRecord.objects.filter(kind="enforcer.mode_changed").exists()
    )


def test_clearing_a_missing_override_is_harmless(staff):
    response = staff.post(URL, {"addon": "nobody", "clear": True}, format="json")
    assert response.status_code == 200


def test_only_staff():
    client = APIClient()
    assert client.get(URL).status_code == 401
    user = get_user_model().objects.create_user("joe", password="pw")
    client.force_authenticate(user)
    response = client.post(URL, {"mode": "shadow"}, format="json")
    assert response.status_code == 403 and response.json()["success"] is False
    assert not EnforcerMode.objects.exists()


def test_admin_flip_goes_through_the_enforcer(client, tickets):
    admin = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(admin)
    response = client.post("/admin/metacore/enforcermode/add/", {"addon_key": "tickets", "mode": "shadow"})
    assert response.status_code == 302, response.content[:500]
    assert EnforcerMode.objects.get(addon_key="tickets").mode == "shadow"
    assert AuditRecord.objects.filter(kind="enforcer.mode_changed", actor=str(admin.pk)).exists()

    response = client.post("/admin/metacore/enforcermode/add/", {"addon_key": "../x", "mode": "shadow"})
    assert response.status_code == 200 and b"invalid addon key" in response.content
    assert not EnforcerMode.objects.filter(addon_key="../x").exists()


@pytest.mark.parametrize(
    "metacore,expected",
    [
        ({"HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"]}, {"metacore.W030"}),
        ({"HTTP_ALLOWED_NETWORKS": ["not-a-net"]}, {"metacore.E030", "metacore.W030"}),
        ({"AUDIT_SINKS": ["metacore.audit.sinks.Nope", 42]}, {"metacore.E031"}),
        ({}, set()),
    ],
)
def test_system_checks_for_egress_and_audit(settings, metacore, expected):
    from metacore.checks import check_egress_and_audit

    settings.METACORE = metacore
    assert {e.id for e in check_egress_and_audit(None)} == expected
