"""Two organizations on one host (issue 15's "done when"): A installs and enables tickets, B
does not. B gets 404 on every tickets endpoint and no hub events, sees tickets in the catalog
as not installed and can install it itself; A disabling it does not affect B. Over HTTP, the
hub and the commands, on the configured database."""

import io
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from metacore import events
from metacore.kernel import get_kernel, reset_kernel
from metacore.models import AuditRecord, Installation, InstallJournal, TenantMembership
from tests.hubkit import communicator, receive_json, token_for
from tests.management_bundles import helpdesk_manifest, unsigned_archive, write_source

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/metacore"
ORG_A = "aaaaaaaa-0000-4000-8000-00000000000a"
ORG_B = "bbbbbbbb-0000-4000-8000-00000000000b"


@pytest.fixture(autouse=True)
def host(settings, tmp_path):
    """A catalog holding tickets 1.0.0; an in-memory hub; addon tables dropped afterwards."""
    from channels.layers import channel_layers

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    unsigned_archive(
        write_source(tmp_path / "src", helpdesk_manifest(key="tickets")), catalog / "tickets-1.0.0.tar.gz"
    )
    settings.METACORE = {
        **settings.METACORE,
        "BUNDLE_DIR": catalog,
        "DATA_DIR": tmp_path / "var",
        "ALLOW_UNSIGNED_BUNDLES": True,
        "HUB_COALESCE_MS": 0,
    }
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    reset_kernel()
    yield
    installer = get_kernel().installer
    for row in Installation.objects.all():
        installer.uninstall(row.key, drop_data=True)
    channel_layers.backends.clear()
    reset_kernel()


def admin_of(organization, name):
    """An organization's admin: every permission, not host staff, a member of `organization`."""
    user = User.objects.create_user(name, is_superuser=True)
    TenantMembership.objects.create(user=user, organization_id=organization)
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


@pytest.fixture
def a():
    return admin_of(ORG_A, "ann")


@pytest.fixture
def b():
    return admin_of(ORG_B, "bob")


def tickets_endpoints(client):
    """Status of every tickets endpoint for this client."""
    return {
        "list": client.get("/api/dynamic/tickets").status_code,
        "create": client.post("/api/dynamic/tickets", {"title": "x"}, format="json").status_code,
        "table": client.get("/api/metadata/table/tickets").status_code,
        "modal": client.get("/api/metadata/modal/tickets").status_code,
        "options": client.get("/api/options/tickets").status_code,
        "search": client.get("/api/search/tickets?q=x").status_code,
        "frontend": client.get(f"{API}/addons/tickets/frontend/remoteEntry.js").status_code,
    }


ALL_404 = dict.fromkeys(["list", "create", "table", "modal", "options", "search", "frontend"], 404)


def settings_of(client):
    [installation] = client.get(f"{API}/installations").json()
    return installation["settings"]


def catalog_entry(client):
    [entry] = client.get(f"{API}/catalog").json()
    return entry["installed"], entry["enabled"]


def test_an_addon_one_organization_installed_is_invisible_to_another(a, b):
    response = a.post(f"{API}/installations/tickets", {}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["organization_id"] == ORG_A and response.json()["secret"]

    assert all(code in (200, 201) for code in tickets_endpoints(a).values()), tickets_endpoints(a)
    assert tickets_endpoints(b) == ALL_404
    assert catalog_entry(a) == (True, True) and catalog_entry(b) == (False, False)
    assert [i["key"] for i in a.get(f"{API}/installations").json()] == ["tickets"]
    assert b.get(f"{API}/installations").json() == []
    assert [m["key"] for m in a.get(f"{API}/manifests").json()] == ["tickets"]
    assert b.get(f"{API}/manifests").json() == [] and b.get(f"{API}/navigation").json() == []
    assert "Tickets" not in json.dumps(b.get("/api/metadata/all").json())
    assert b.post(f"{API}/installations/tickets/disable").status_code == 404
    assert b.get(f"{API}/installations?organization={ORG_A}").status_code == 403

    # B installs it itself: its own installation of the same package, its own rows
    assert (
        b.post(f"{API}/installations/tickets", {"settings": {"sla_hours": 4}}, format="json").status_code
        == 201
    )
    assert b.post("/api/dynamic/tickets", {"title": "b's"}, format="json").status_code == 201
    assert [r["title"] for r in b.get("/api/dynamic/tickets").json()["data"]] == ["b's"]
    assert catalog_entry(b) == (True, True)
    assert settings_of(a) == {"greeting": "hola"}
    assert settings_of(b) == {"greeting": "hola", "sla_hours": 4}

    # A disables it: A loses it, B keeps it
    assert a.post(f"{API}/installations/tickets/disable").json()["status"] == "disabled"
    assert tickets_endpoints(a) == ALL_404
    assert b.get("/api/dynamic/tickets").status_code == 200
    assert catalog_entry(a) == (True, False) and catalog_entry(b) == (True, True)

    journal = set(InstallJournal.objects.filter(ok=True).values_list("operation", "organization"))
    assert journal == {("install", ORG_A), ("install", ORG_B), ("disable", ORG_A)}
    assert AuditRecord.objects.filter(kind="addon.disable", tenant=ORG_A).count() == 1


def test_organization_admins_act_only_for_their_own_organization(a, b):
    assert a.post(f"{API}/installations/tickets", {}, format="json").status_code == 201
    assert b.post(f"{API}/installations/tickets/disable?organization={ORG_A}").status_code == 403
    assert a.post(f"{API}/installations/tickets/upgrade").status_code == 403
    refused = a.post(f"{API}/installations/tickets/settings", {"colour": "red"}, format="json")
    assert refused.status_code == 400 and "colour" in refused.json()["message"]
    refused = a.post(f"{API}/installations/tickets/settings", {"sla_hours": "soon"}, format="json")
    assert refused.status_code == 400 and "sla_hours" in json.dumps(refused.json())

    staff = APIClient()
    staff.force_authenticate(User.objects.create_user("host", is_staff=True, is_superuser=True))
    assert staff.post(f"{API}/installations/tickets/disable?organization={ORG_A}").status_code == 200
    assert tickets_endpoints(a)["list"] == 404
    assert [i["key"] for i in staff.get(f"{API}/installations").json()] == ["tickets"]
    assert staff.get(f"{API}/installations?organization={ORG_B}").json() == []


def test_a_host_wide_install_serves_every_organization_and_each_may_disable_it(a, b):
    out = io.StringIO()
    call_command("metacore_install", str(_catalog_bundle()), stdout=out)
    assert tickets_endpoints(a)["list"] == 200 and tickets_endpoints(b)["list"] == 200

    call_command("metacore_disable", "tickets", "--organization", ORG_B, stdout=out)
    assert tickets_endpoints(b) == ALL_404 and tickets_endpoints(a)["list"] == 200
    assert catalog_entry(b) == (True, False)
    call_command("metacore_enable", "tickets", "--organization", ORG_B, stdout=out)
    assert tickets_endpoints(b)["list"] == 200
    assert "is enabled for organization" in out.getvalue()


def _catalog_bundle():
    from metacore.conf import metacore_settings

    return next(metacore_settings.BUNDLE_DIR.glob("tickets-*.tar.gz"))


# ------------------------------------------------------------------------------- the hub


async def _connect(user):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(f"/api/ws?token={token}")
    assert (await comm.connect(timeout=5))[0]
    return comm


async def _subscribe(comm, models):
    await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": models}))
    frame = await receive_json(comm)
    assert frame["type"] == "DATA_SUBSCRIBED", frame
    return frame["payload"]


def _publish(tenant):
    """An event of tickets for `tenant`, as the store or the sandbox sends it once committed."""
    from django.db import transaction

    event = events.DataEvent(
        addon="tickets",
        model="Tickets",
        table="tickets",
        action="created",
        id=str(uuid.uuid4()),
        tenant=tenant,
        actor_id="1",
        fields=("title",),
        before=None,
        after={"title": "t"},
    )
    with transaction.atomic():
        events.publish_on_commit(events.data_changed, event)


def test_the_hub_refuses_and_stops_delivering_for_organizations_without_the_addon(a, b):
    assert a.post(f"{API}/installations/tickets", {}, format="json").status_code == 201

    async def body():
        ann, bob = await _connect(a.user), await _connect(b.user)
        assert (await _subscribe(ann, ["tickets"]))["models"] == ["tickets"]
        ack = await _subscribe(bob, ["tickets"])
        assert ack["models"] == [] and ack["refused"][0]["model"] == "tickets"
        assert (await _subscribe(bob, ["*"]))["models"] == ["*"]

        await database_sync_to_async(_publish)(ORG_A)
        assert (await receive_json(ann))["type"] == "DATA_EVENT"
        assert await bob.receive_nothing(timeout=0.3)

        await database_sync_to_async(a.post)(f"{API}/installations/tickets/disable")
        while (await receive_json(ann))["type"] != "ADDON_MANIFEST_CHANGED":
            pass
        await database_sync_to_async(_publish)(ORG_A)
        assert await ann.receive_nothing(timeout=0.3)
        await ann.disconnect()
        await bob.disconnect()

    async_to_sync(body)()
