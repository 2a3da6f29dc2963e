"""The event log: addon events kept per organization after commit, queried by type and time,
pruned by retention."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from metacore.integrations.models import EventLogEntry
from metacore.kernel import get_kernel
from metacore.models import TenantMembership

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def helpdesk():
    get_kernel().installer.install(EXAMPLE)
    yield
    get_kernel().installer.uninstall("helpdesk", drop_data=True)


def member(name):
    user = get_user_model().objects.create_superuser(
        username=name, password="pw", email=f"{name}@example.com"
    )
    TenantMembership.objects.create(user=user, organization_id=uuid.uuid4())
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_events_are_logged_per_organization_and_queryable(helpdesk):
    client = member("agent")
    ticket = client.post("/api/dynamic/tickets", {"title": "t"}, format="json").json()["data"]
    assert (
        client.post(
            f"/api/dynamic/tickets/{ticket['id']}/action/escalate", {"resolution": "x"}, format="json"
        ).status_code
        == 422
    )  # rolled back: nothing logged
    assert (
        client.post(
            f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "y"}, format="json"
        ).status_code
        == 200
    )
    [entry] = client.get("/api/metacore/events", {"type": "helpdesk.*"}).json()["data"]
    assert entry["type"] == "helpdesk.ticket_resolved" and entry["payload"] == {"id": ticket["id"]}
    assert client.get("/api/metacore/events", {"type": "billing.*"}).json()["data"] == []
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client.get("/api/metacore/events", {"since": later}).json()["data"] == []
    assert len(client.get("/api/metacore/events", {"until": later}).json()["data"]) == 1
    assert member("other").get("/api/metacore/events").json()["data"] == []
    bad = client.get("/api/metacore/events", {"since": "yesterday", "limit": "0"})
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"since", "limit"}


def test_retention_prunes_old_entries():
    EventLogEntry.objects.create(
        tenant="t", addon_key="a", type="a.old", at=timezone.now() - timedelta(days=40)
    )
    EventLogEntry.objects.create(tenant="t", addon_key="a", type="a.new", at=timezone.now())
    call_command("metacore_eventlog_prune", "--older-than", "30")
    assert list(EventLogEntry.objects.values_list("type", flat=True)) == ["a.new"]
