"""Host models (`metacore.register_model`): ordinary Django models served through the dynamic
API, list query language, metadata, options, search, import/export and the hub, with Django's
model permissions and the organization column, next to addon models without disturbing them."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models

from metacore.errors import InvalidInput
from metacore.kernel import get_kernel, reset_kernel
from metacore.manifest.parse import load_manifest
from metacore.schema.host import host_models
from tests.hostapp.models import Bulletin, Crew, register
from tests.hubkit import communicator, receive_json, token_for
from tests.store_support import ORG_A, ORG_B, client_for, fails, installed_addon, make_user, ok

HOST_TABLES = (Crew, Bulletin)


@pytest.fixture(scope="module")
def hosted(django_db_blocker):
    """The host app's tables (what its migrations would create) and its registrations."""
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        for model in HOST_TABLES:
            editor.create_model(model)
    register()
    reset_kernel()
    yield
    host_models.unregister("bulletins")
    host_models.unregister("crews")
    reset_kernel()
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        for model in reversed(HOST_TABLES):
            editor.delete_model(model)


def grant(user, *django_actions, model=Bulletin):
    """Django's own model permissions (`hostapp.view_bulletin`...), as a host grants them."""
    ContentType.objects.clear_cache()
    content_type = ContentType.objects.get_for_model(model)
    for action in django_actions:
        codename = f"{action}_{model._meta.model_name}"
        permission, _ = Permission.objects.get_or_create(
            codename=codename, content_type=content_type, defaults={"name": codename}
        )
        user.user_permissions.add(permission)
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


@pytest.fixture
def alice(hosted, db):
    return grant(make_user("alice", ORG_A), "view", "add", "change", "delete")


def test_crud_through_the_dynamic_api_by_key_and_by_qualified_name(alice):
    client = client_for(alice)
    created = ok(
        client.post("/api/dynamic/bulletins", {"title": "Boiler", "priority": 3}, format="json"), 201
    )["data"]
    assert isinstance(created["id"], int) and created["organization_id"] == str(ORG_A)
    assert created["body"] == "" and created["done"] is False and created["deleted_at"] is None
    assert "attachment" not in created  # a FileField has no column type: not served
    row = ok(client.get(f"/api/dynamic/host.bulletins/{created['id']}"))["data"]
    assert row["title"] == "Boiler" and row["created_at"]
    updated = ok(client.patch(f"/api/dynamic/bulletins/{created['id']}", {"done": True}, format="json"))[
        "data"
    ]
    assert updated["done"] is True and updated["touched"] > created["touched"]  # auto_now kept
    assert Bulletin.objects.get(pk=created["id"]).done is True  # the host's own ORM sees it
    ok(client.delete(f"/api/dynamic/bulletins/{created['id']}"))
    assert Bulletin.objects.get(pk=created["id"]).deleted_at is not None  # soft delete
    fails(client.get(f"/api/dynamic/bulletins/{created['id']}"), 404)
    fails(client.get("/api/dynamic/bulletins/not-a-number"), 404)


def test_list_query_language_search_and_tenancy(alice):
    Bulletin.objects.create(organization_id=ORG_B, title="Other org's printer", priority=9)
    for i, title in enumerate(["Printer jam", "Coffee", "Printer toner"]):
        Bulletin.objects.create(organization_id=ORG_A, title=title, priority=i + 1)
    client = client_for(alice)
    body = ok(client.get("/api/dynamic/bulletins?search=printer&sortBy=priority&order=desc"))
    assert [r["title"] for r in body["data"]] == ["Printer toner", "Printer jam"]
    assert body["meta"]["total"] == 2
    ranged = ok(client.get("/api/dynamic/bulletins?f_priority=RANGE:2,3&fields=title"))["data"]
    assert sorted(r["title"] for r in ranged) == ["Coffee", "Printer toner"] and set(ranged[0]) == {
        "id",
        "title",
    }
    fails(client.get("/api/dynamic/bulletins?f_priority=gte:many"), 400)
    other = Bulletin.objects.get(organization_id=ORG_B)
    fails(client.get(f"/api/dynamic/bulletins/{other.pk}"), 404)  # another tenant's row
    fails(client.patch(f"/api/dynamic/bulletins/{other.pk}", {"title": "x"}, format="json"), 404)
    drifter = grant(make_user("drifter"), "view")
    assert "organization" in fails(client_for(drifter).get("/api/dynamic/bulletins"), 403)["message"]


def test_writes_are_validated_from_the_model_fields(alice):
    client = client_for(alice)
    for body, field in [
        ({"title": "x" * 121}, "title"),
        ({"title": "ok", "organization_id": str(ORG_B)}, "organization_id"),
        ({"title": "ok", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"title": "ok", "attachment": "a.txt"}, "attachment"),
        ({"priority": 2}, "title"),
        ({"title": "ok", "crew_id": 999999}, "crew_id"),
    ]:
        assert field in fails(client.post("/api/dynamic/bulletins", body, format="json"), 400)["errors"]
    assert not Bulletin.objects.exists()


def test_django_model_permissions_decide(hosted, db):
    reader = grant(make_user("reader", ORG_A), "view")
    root = make_user("root", ORG_A, superuser=True)
    nobody = make_user("nobody", ORG_A)
    assert '"host.bulletins.read"' in fails(client_for(nobody).get("/api/dynamic/bulletins"), 403)["message"]
    ok(client_for(reader).get("/api/dynamic/bulletins"))
    refused = fails(client_for(reader).post("/api/dynamic/bulletins", {"title": "x"}, format="json"), 403)
    assert "host.bulletins.create" in refused["message"]
    ok(client_for(root).post("/api/dynamic/bulletins", {"title": "x"}, format="json"), 201)
    permissions = get_kernel().permissions
    assert "host.bulletins.read" in permissions.effective(reader)
    assert "host.bulletins.update" not in permissions.effective(reader)
    assert {"host.crews.read", "host.bulletins.delete"} <= permissions.effective(root)


def test_references_to_another_host_model_metadata_options_and_search(alice):
    alice = grant(alice, "view", model=Crew)
    plumbers, _ = Crew.objects.get_or_create(name="Plumbers")
    Crew.objects.get_or_create(name="Electricians")
    client = client_for(alice)
    ok(client.post("/api/dynamic/bulletins", {"title": "Leak", "crew_id": plumbers.pk}, format="json"), 201)
    expanded = ok(client.get("/api/dynamic/bulletins?expand=crew_id"))["data"][0]
    assert expanded["crew"] == {"id": plumbers.pk, "name": "Plumbers"}
    table = ok(client.get("/api/metadata/table/bulletins"))["data"]
    columns = {c["key"]: c for c in table["columns"]}
    assert columns["crew_id"]["ref"] == "host.crews" and "organization_id" not in columns
    assert table["searchColumns"] == ["title", "body"] and table["title"] == "Bulletins"
    modal = ok(client.get("/api/metadata/modal/host.bulletins"))["data"]
    assert [f["key"] for f in modal["fields"]] == [
        "title",
        "body",
        "priority",
        "done",
        "crew_id",
        "author_id",
    ]
    options = ok(client.get("/api/options/bulletins?field=crew_id&q=plu"))["data"]
    assert [(o["value"], o["label"]) for o in options] == [(plumbers.pk, "Plumbers")]
    found = ok(client.get("/api/search/bulletins?q=lea"))["data"]
    assert [o["label"] for o in found] == ["Leak"]
    everything = ok(client.get("/api/metadata/all"))["data"]
    assert {"bulletins", "crews"} <= set(everything["tables"])


def test_import_and_export_of_a_host_model(alice):
    client = client_for(alice)
    csv_body = "title,priority,done\r\nFirst,1,true\r\nSecond,2,false\r\n"
    report = ok(client.post("/api/dynamic/bulletins/import", csv_body, content_type="text/csv"), 201)["data"]
    assert report["created"] == 2
    bad = "title,priority\r\nFine,1\r\nBroken,lots\r\n"
    refused = client.post("/api/dynamic/bulletins/import", bad, content_type="text/csv")
    assert refused.status_code == 422 and refused.json()["data"]["errors"][0]["line"] == 3
    exported = b"".join(
        client.get("/api/dynamic/bulletins/export?columns=title,priority&sortBy=title").streaming_content
    )
    assert exported.decode().splitlines() == ["title,priority", "First,1", "Second,2"]
    assert set(Bulletin.objects.values_list("organization_id", flat=True)) == {ORG_A}


def test_registry_serves_host_models_beside_addons_and_keeps_them_on_reload(
    hosted, db, django_db_blocker, tmp_path
):
    registry = get_kernel().registry
    assert registry.resolve("bulletins").host is not None
    assert registry.resolve("HOST.Bulletins").model_class is Bulletin
    manifest = {
        "key": "boards",
        "name": "Boards",
        "version": "1.0.0",
        "model_definitions": [
            {
                "table_name": "bulletins",
                "model_key": "bulletins",
                "columns": [{"name": "title", "type": "string"}],
            }
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with installed_addon(django_db_blocker, tmp_path):
        registry.refresh(force=True)
        ambiguous = client_for(make_user("root", ORG_A, superuser=True)).get("/api/dynamic/bulletins")
        assert fails(ambiguous, 409)["errors"]["model"] == ["boards.bulletins", "host.bulletins"]
        assert registry.resolve("boards.bulletins").host is None
        assert registry.resolve("host.bulletins").model_class is Bulletin
        assert [m.spec.table for m in registry.all_models()] == ["bulletins"]  # addons only
    assert registry.resolve("bulletins").model_class is Bulletin


def test_the_host_namespace_is_no_addon_key():
    with pytest.raises(InvalidInput, match="reserved"):
        load_manifest({"key": "host", "name": "Host", "version": "1.0.0"})


def test_registration_mistakes_are_named():
    class Keyless(models.Model):
        code = models.CharField(max_length=10, primary_key=True)

        class Meta:
            app_label = "hostapp"

    class Plain(models.Model):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "hostapp"

    for call, message in [
        (lambda: host_models.register(Plain, key="Bad Key"), "lowercase"),
        (lambda: host_models.register(Plain, key="crews"), "already taken"),
        (lambda: host_models.register(object), "not a concrete Django model"),
    ]:
        host_models.register(Crew, key="crews")
        try:
            with pytest.raises(ImproperlyConfigured, match=message):
                call()
        finally:
            host_models.unregister("crews")
    for options, message in [
        ({"model": Keyless, "key": "keyless"}, "primary key"),
        ({"model": Plain, "key": "plain", "tenant_field": "org"}, "tenant_field 'org'"),
        ({"model": Plain, "key": "plain", "search": ["nope"]}, "unknown field"),
    ]:
        host_models.register(**options)
        try:
            assert message in host_models.problems()[options["key"]]
            assert options["key"] not in [m.key for m in host_models.manifest().models]
        finally:
            host_models.unregister(options["key"])


@pytest.mark.django_db(transaction=True)
def test_host_model_writes_reach_hub_subscribers_of_its_tenant_or_everyone_when_unscoped(hosted, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
    settings.METACORE = {**settings.METACORE, "HUB_COALESCE_MS": 0}
    channel_layers.backends.clear()
    reset_kernel()
    writer = grant(grant(make_user("writer", ORG_A), "view", "add"), "add", model=Crew)
    peer = grant(grant(make_user("peer", ORG_A), "view"), "view", model=Crew)
    outsider = grant(grant(make_user("outsider", ORG_B), "view"), "view", model=Crew)
    blind = make_user("blind", ORG_A)

    async def connect(user):
        comm = communicator(f"/api/ws?token={await database_sync_to_async(token_for)(user)}")
        connected, _ = await comm.connect(timeout=5)
        assert connected
        await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": ["host.bulletins", "crews"]}))
        return comm, (await receive_json(comm))["payload"]

    async def body():
        sockets = {}
        for user in (peer, outsider, blind):
            sockets[user.username], ack = await connect(user)
            if user is blind:
                assert ack["models"] == [] and "host.bulletins.read" in ack["refused"][0]["reason"]
            else:
                assert ack["models"] == ["crews", "host.bulletins"]
        created = await database_sync_to_async(
            lambda: client_for(writer).post("/api/dynamic/bulletins", {"title": "live"}, format="json").json()
        )()
        frame = await receive_json(sockets["peer"])
        assert frame["type"] == "DATA_EVENT"
        assert {k: frame["payload"][k] for k in ("addon", "model", "table", "action", "id", "org_id")} == {
            "addon": "host",
            "model": "bulletins",
            "table": "bulletins",
            "action": "created",
            "id": str(created["data"]["id"]),
            "org_id": str(ORG_A),
        }
        assert await sockets["outsider"].receive_nothing(timeout=0.3)
        # An unscoped model's rows are every organization's: so are its events.
        crew = await database_sync_to_async(
            lambda: (
                client_for(writer).post("/api/dynamic/crews", {"name": "Night shift"}, format="json").json()
            )
        )()
        for name in ("peer", "outsider"):
            payload = (await receive_json(sockets[name]))["payload"]
            assert (payload["table"], payload["id"], payload["org_id"]) == (
                "crews",
                str(crew["data"]["id"]),
                "",
            )
        assert await sockets["blind"].receive_nothing(timeout=0.3)
        for comm in sockets.values():
            await comm.disconnect()

    try:
        async_to_sync(body)()
    finally:
        Bulletin.objects.all().delete()
        Crew.objects.all().delete()
        channel_layers.backends.clear()
        reset_kernel()


def test_the_openapi_document_describes_host_models(alice):
    response = client_for(alice).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    document = json.loads(response.content)
    detail = document["paths"]["/api/dynamic/host.bulletins/{id}"]
    assert detail["parameters"][0]["schema"]["type"] == "integer"
    assert "/api/dynamic/host.crews" in document["paths"]
    body = document["components"]["schemas"]["HostBulletinsInput"]["properties"]
    assert "title" in body and "organization_id" not in body and "created_at" not in body


def test_the_permission_service_grants_host_permissions_by_their_dynamic_api_names(hosted, db):
    from django.contrib.auth.models import Group

    grant(make_user("migrations"), "view", "add", "change", "delete")  # the rows a host's migrate creates
    permissions = get_kernel().permissions
    clerk = make_user("clerk", ORG_A)
    assert permissions.grant(clerk, ["host.bulletins.*"]) == [
        "host.bulletins.create",
        "host.bulletins.delete",
        "host.bulletins.read",
        "host.bulletins.update",
    ]
    clerk = User.objects.get(pk=clerk.pk)
    assert clerk.has_perm("hostapp.change_bulletin")  # it is the Django permission
    assert permissions.revoke(clerk, ["host.bulletins.delete"]) == ["host.bulletins.delete"]
    readers = Group.objects.create(name="readers")
    permissions.grant(readers, ["host.bulletins.read"])
    clerk.groups.add(readers)
    assert permissions.grants(clerk) == [
        ("host.bulletins.create", "direct"),
        ("host.bulletins.read", "direct"),
        ("host.bulletins.read", "group:readers"),
        ("host.bulletins.update", "direct"),
    ]
    ok(client_for(User.objects.get(pk=clerk.pk)).get("/api/dynamic/bulletins"))
    with pytest.raises(Exception, match="unknown permission: host.bulletins.approve"):
        permissions.grant(clerk, ["host.bulletins.approve"])
