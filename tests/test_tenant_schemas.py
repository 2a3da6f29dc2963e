"""`schema-per-tenant` isolation: one copy of an addon's tables per organization (PostgreSQL
schema `addon_<key>_<org8>`, SQLite tables `addon_<key>_<org8>__<table>`), provisioned on an
organization's first use of a host-wide install, reached by every interface through the
caller's organization, dropped with the addon. Both databases."""

import json
import shutil
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from store_support import ORG_A, ORG_B, client_for, fails, make_user, ok

from metacore.context import CallContext
from metacore.errors import Conflict, NotFound
from metacore.kernel import get_kernel
from metacore.models import AppliedMigration, Installation, TenantSchema
from metacore.schema import ddl

pytestmark = pytest.mark.django_db(transaction=True)

LEDGER = Path(__file__).resolve().parent / "data" / "ledger"
PERMS = [f"ledger.{t}.{a}" for t in ("accounts", "entries") for a in ("read", "create", "update", "delete")]
SPACE_A, SPACE_B = f"ledger_{ORG_A.hex[:8]}", f"ledger_{ORG_B.hex[:8]}"


def ledger_bundle(tmp_path, version="1.0.0", change=None):
    """The ledger fixture as `version`, its manifest passed through `change`."""
    root = tmp_path / f"ledger-{version}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(LEDGER, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = version
    if change:
        change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def ledger(tmp_path):
    get_kernel().installer.install(ledger_bundle(tmp_path))
    yield
    if Installation.objects.filter(key="ledger").exists():
        get_kernel().installer.uninstall("ledger", drop_data=True)


@pytest.fixture
def alice(ledger):
    return client_for(make_user("alice", ORG_A, perms=PERMS))


@pytest.fixture
def bob(ledger):
    return client_for(make_user("bob", ORG_B, perms=PERMS))


def post_account(client, code, name):
    return ok(client.post("/api/dynamic/ledger.accounts", {"code": code, "name": name}, format="json"), 201)[
        "data"
    ]


def copies():
    return sorted(TenantSchema.objects.filter(addon_key="ledger").values_list("space", flat=True))


def test_a_host_wide_install_has_no_tables_until_an_organization_uses_it(alice, bob):
    assert ddl.addon_tables("ledger") == [] and copies() == []
    post_account(alice, "1000", "Cash")
    assert copies() == [SPACE_A]
    assert ddl.addon_tables(SPACE_A) == ["accounts", "entries"]
    post_account(bob, "1000", "Bank")  # the same unique code: another organization, another table
    assert copies() == sorted([SPACE_A, SPACE_B])
    assert ddl.addon_tables(SPACE_B) == ["accounts", "entries"] and ddl.addon_tables("ledger") == []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'addon_ledger%%' ORDER BY nspname"
            )
            assert [r[0] for r in cursor.fetchall()] == sorted([f"addon_{SPACE_A}", f"addon_{SPACE_B}"])
            cursor.execute(  # the bundle SQL ran in each copy, under its own search_path
                "SELECT schemaname FROM pg_indexes WHERE indexname = 'entries_memo_idx' ORDER BY schemaname"
            )
            assert [r[0] for r in cursor.fetchall()] == sorted([f"addon_{SPACE_A}", f"addon_{SPACE_B}"])
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'addon_ledger%'"
            )
            assert sorted(r[0] for r in cursor.fetchall()) == sorted(
                f"addon_{space}__{table}" for space in (SPACE_A, SPACE_B) for table in ("accounts", "entries")
            )
    assert set(AppliedMigration.objects.filter(name="0001_init.sql").values_list("addon_key", flat=True)) == {
        SPACE_A,
        SPACE_B,
    }


def test_two_organizations_rows_never_meet_over_rest(alice, bob):
    cash = post_account(alice, "1000", "Cash")
    bank = post_account(bob, "2000", "Bank")
    entry = ok(
        alice.post(
            "/api/dynamic/ledger.entries",
            {"account_id": cash["id"], "amount": "12.50", "memo": "coffee beans"},
            format="json",
        ),
        201,
    )["data"]
    assert [a["name"] for a in ok(alice.get("/api/dynamic/ledger.accounts"))["data"]] == ["Cash"]
    assert [a["name"] for a in ok(bob.get("/api/dynamic/ledger.accounts"))["data"]] == ["Bank"]
    fails(bob.get(f"/api/dynamic/ledger.accounts/{cash['id']}"), 404)
    fails(bob.patch(f"/api/dynamic/ledger.accounts/{cash['id']}", {"name": "x"}, format="json"), 404)
    fails(bob.delete(f"/api/dynamic/ledger.entries/{entry['id']}"), 404)
    # a reference to another organization's row names nothing in the caller's copy
    fails(
        bob.post("/api/dynamic/ledger.entries", {"account_id": cash["id"], "amount": "1"}, format="json"),
        400,
    )
    assert ok(bob.get("/api/dynamic/ledger.entries", {"search": "coffee"}))["data"] == []
    assert [
        e["memo"] for e in ok(alice.get("/api/dynamic/ledger.entries", {"search": "coffee"}))["data"]
    ] == ["coffee beans"]
    options = ok(bob.get("/api/options/ledger.accounts"))["data"]
    assert [o["value"] for o in options] == [bank["id"]]
    exported = bob.get("/api/dynamic/ledger.accounts/export", {"format": "json"})
    assert exported.status_code == 200
    assert [a["name"] for a in json.loads(b"".join(exported.streaming_content))] == ["Bank"]
    ok(
        bob.post("/api/dynamic/ledger.accounts/import", "code,name\n3000,Savings\n", content_type="text/csv"),
        201,
    )
    assert sorted(a["name"] for a in ok(bob.get("/api/dynamic/ledger.accounts"))["data"]) == [
        "Bank",
        "Savings",
    ]
    assert ok(alice.get(f"/api/dynamic/ledger.accounts/{cash['id']}"))["data"]["name"] == "Cash"


def test_no_organization_no_copy(ledger):
    loner = client_for(make_user("loner", None, perms=PERMS))
    fails(loner.get("/api/dynamic/ledger.accounts"), 403)
    assert copies() == []


def test_uninstall_keeping_data_keeps_every_copy_and_a_reinstall_serves_it(tmp_path, alice, bob):
    post_account(alice, "1000", "Cash")
    post_account(bob, "2000", "Bank")
    get_kernel().installer.uninstall("ledger")
    assert copies() == sorted([SPACE_A, SPACE_B]) and ddl.addon_tables(SPACE_A) == ["accounts", "entries"]
    result = get_kernel().installer.install(ledger_bundle(tmp_path))
    assert sorted(result.adopted_tables) == sorted([f"addon_{SPACE_A}", f"addon_{SPACE_B}"])
    assert [a["name"] for a in ok(alice.get("/api/dynamic/ledger.accounts"))["data"]] == ["Cash"]


def test_uninstall_with_drop_data_drops_every_copy(alice, bob):
    post_account(alice, "1000", "Cash")
    post_account(bob, "2000", "Bank")
    call_command("metacore_uninstall", "ledger", "--drop-data", "--yes")
    assert copies() == [] and ddl.addon_tables(SPACE_A) == [] and ddl.addon_tables(SPACE_B) == []
    assert not AppliedMigration.objects.filter(addon_key__in=[SPACE_A, SPACE_B]).exists()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'addon_ledger%%'")
            assert cursor.fetchone() == (0,)


def test_an_organization_copy_is_provisioned_and_dropped_by_the_service(ledger):
    service = get_kernel().tenant_schemas
    copy = service.provision("ledger", ORG_A)
    assert copy.space == SPACE_A and service.provision("ledger", str(ORG_A)).pk == copy.pk  # idempotent
    service.drop("ledger", ORG_A)
    assert copies() == [] and ddl.addon_tables(SPACE_A) == []


def test_organizations_sharing_the_first_eight_hex_digits_are_refused(ledger):
    service = get_kernel().tenant_schemas
    service.provision("ledger", ORG_A)
    twin = uuid.UUID(ORG_A.hex[:8] + "ffff4fff8fff" + "f" * 12)
    with pytest.raises(Conflict, match="share the first 8 hex digits"):
        service.provision("ledger", twin)
    assert copies() == [SPACE_A]


def test_an_addon_key_naming_a_copy_is_refused(tmp_path, ledger):
    get_kernel().tenant_schemas.provision("ledger", ORG_A)
    impostor = ledger_bundle(tmp_path, change=lambda m: m.update(key=SPACE_A, tenant_isolation="shared"))
    with pytest.raises(Conflict, match=f"addon_{SPACE_A} already holds .* cannot be installed"):
        get_kernel().installer.install(impostor)


def test_isolation_cannot_change_in_an_upgrade(tmp_path, ledger):
    bundle = ledger_bundle(tmp_path, "1.1.0", change=lambda m: m.update(tenant_isolation="shared"))
    with pytest.raises(Conflict, match="tenant isolation cannot change"):
        get_kernel().installer.upgrade(bundle)


# -- the sandbox: db_query / db_exec reach the calling organization's copy ----------------------


def sandbox_call(export, *parts, tenant):
    raw = get_kernel().sandbox.call_raw(
        "probe", export, "\0".join(parts).encode(), CallContext(tenant=str(tenant))
    )
    return json.loads(raw)


@pytest.fixture
def probe(tmp_path):
    import sandbox_guests as guests

    guests.install_probe_addon(tmp_path, "probe", tenant_isolation="schema-per-tenant")
    yield
    get_kernel().installer.uninstall("probe", drop_data=True)


def test_sandbox_sql_runs_in_the_calling_organizations_copy(probe):
    row = json.dumps([{"$uuid": str(uuid.uuid4())}, "printer on fire", "open"])
    insert = "INSERT INTO tickets (id, title, status) VALUES (?, ?, ?)"
    assert sandbox_call("call_db_exec", insert, row, tenant=ORG_A)["success"] is True
    mine = sandbox_call("call_db_query", "SELECT title FROM tickets", "[]", tenant=ORG_A)
    assert mine["data"]["rows"] == [{"title": "printer on fire"}]
    assert mine["meta"]["schema"] == f"addon_probe_{ORG_A.hex[:8]}"
    theirs = sandbox_call("call_db_query", "SELECT title FROM tickets", "[]", tenant=ORG_B)
    assert theirs["success"] is True and theirs["data"]["rows"] == []
    qualified = sandbox_call("call_db_query", "SELECT title FROM addon_probe.tickets", "[]", tenant=ORG_B)
    assert qualified["data"]["rows"] == []  # the addon's own schema name means the caller's copy
    refused = sandbox_call(
        "call_db_query", f"SELECT title FROM addon_probe_{ORG_A.hex[:8]}.tickets", "[]", tenant=ORG_B
    )
    assert refused["success"] is False and refused["error"]["code"] == "forbidden", refused
    nobody = sandbox_call("call_db_query", "SELECT title FROM tickets", "[]", tenant="")
    assert nobody["success"] is False and nobody["error"]["code"] == "forbidden"
    get_kernel().installer.disable("probe", organization=ORG_B)
    with pytest.raises(NotFound):  # the sandbox runs an addon only for organizations that have it enabled
        sandbox_call("call_db_query", "SELECT title FROM tickets", "[]", tenant=ORG_B)
    if connection.vendor == "postgresql":  # the guest role of B's copy has no right on A's
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT has_schema_privilege(r.rolname, %s, 'USAGE') FROM pg_roles r WHERE r.rolname LIKE %s",
                [f"addon_probe_{ORG_A.hex[:8]}", f"%\\_g\\_probe\\_{ORG_B.hex[:8]}"],
            )
            assert cursor.fetchall() == [(False,)]


# -- the hub: an organization's events never reach another's sockets ---------------------------


@pytest.fixture
def hub(settings):
    from channels.layers import channel_layers

    from metacore.kernel import reset_kernel

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
    settings.METACORE = {**settings.METACORE, "HUB_COALESCE_MS": 0}
    channel_layers.backends.clear()
    reset_kernel()
    yield
    channel_layers.backends.clear()
    reset_kernel()


def test_hub_events_stay_with_their_organization(hub, ledger):
    from asgiref.sync import async_to_sync
    from channels.db import database_sync_to_async
    from hubkit import communicator, receive_json, token_for

    users = {org: make_user(f"u{org.hex[:4]}", org, perms=PERMS) for org in (ORG_A, ORG_B)}

    async def connect(user):
        comm = communicator(f"/api/ws?token={await database_sync_to_async(token_for)(user)}")
        assert (await comm.connect(timeout=5))[0]
        await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": ["ledger.accounts"]}))
        assert (await receive_json(comm))["type"] == "DATA_SUBSCRIBED"
        return comm

    async def body():
        a, b = await connect(users[ORG_A]), await connect(users[ORG_B])
        created = await database_sync_to_async(post_account)(client_for(users[ORG_B]), "2000", "Bank")
        frame = await receive_json(b)
        assert frame["type"] == "DATA_EVENT" and frame["payload"]["id"] == created["id"]
        assert frame["payload"]["org_id"] == str(ORG_B)
        assert await a.receive_nothing(timeout=0.5)
        await a.disconnect()
        await b.disconnect()

    async_to_sync(body)()


# -- upgrades: every organization's copy, in one transaction ----------------------------------


def with_note(manifest):
    manifest["model_definitions"][0]["columns"].append({"name": "note", "type": "string", "size": 40})


def test_an_upgrade_changes_every_copy(tmp_path, alice, bob):
    post_account(alice, "1000", "Cash")
    post_account(bob, "2000", "Bank")
    plan = get_kernel().installer.plan(ledger_bundle(tmp_path, "1.1.0", with_note))
    assert [s["action"] for s in plan.as_dict()["steps"]] == ["add_column"] and plan.blocked == []
    call_command("metacore_upgrade", str(ledger_bundle(tmp_path, "1.1.0", with_note)))
    for space in (SPACE_A, SPACE_B):
        assert "note" in ddl.describe_table(space, "accounts").columns
    assert ddl.addon_tables("ledger") == []
    created = post_account(bob, "2100", "Petty cash")
    assert (
        ok(bob.patch(f"/api/dynamic/ledger.accounts/{created['id']}", {"note": "drawer"}, format="json"))[
            "data"
        ]["note"]
        == "drawer"
    )
    assert [a["note"] for a in ok(alice.get("/api/dynamic/ledger.accounts"))["data"]] == [None]


def test_an_upgrade_failing_in_the_second_copy_changes_neither(tmp_path, alice, bob):
    post_account(alice, "1000", "Cash")
    post_account(bob, "2000", "Bank")
    table = connection.ops.quote_name(ddl.describe_table(SPACE_B, "accounts").physical)
    with connection.cursor() as cursor:  # B's copy already has the column the upgrade adds
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN note varchar(40)")
    with pytest.raises(Exception, match="note"):
        get_kernel().installer.upgrade(ledger_bundle(tmp_path, "1.1.0", with_note))
    assert "note" not in ddl.describe_table(SPACE_A, "accounts").columns  # the first copy rolled back
    assert Installation.objects.get(key="ledger").version == "1.0.0"
    assert [a["name"] for a in ok(alice.get("/api/dynamic/ledger.accounts"))["data"]] == ["Cash"]


def test_an_upgrade_is_refused_when_one_copy_fails_its_data_check(tmp_path, alice, bob):
    post_account(alice, "1000", "Cash")
    for code in ("2000", "2001"):
        post_account(bob, code, "Same name")

    def unique_name(manifest):
        manifest["model_definitions"][0]["columns"][1]["unique"] = True

    with pytest.raises(Conflict, match=f"organization copy addon_{SPACE_B}"):
        get_kernel().installer.upgrade(ledger_bundle(tmp_path, "1.1.0", unique_name))
    assert Installation.objects.get(key="ledger").version == "1.0.0"


# -- per-organization installs: a copy at the organization's install, gone at its uninstall -----


def test_an_organization_install_provisions_its_copy_and_its_uninstall_drops_it(tmp_path):
    installer = get_kernel().installer
    installer.install(ledger_bundle(tmp_path), organization=ORG_A)
    assert copies() == [SPACE_A] and ddl.addon_tables(SPACE_A) == ["accounts", "entries"]
    installer.install(ledger_bundle(tmp_path), organization=ORG_B)
    assert copies() == sorted([SPACE_A, SPACE_B])
    try:
        installer.uninstall("ledger", organization=ORG_A, drop_data=True)
        assert copies() == [SPACE_B] and ddl.addon_tables(SPACE_A) == []
        assert ddl.addon_tables(SPACE_B) == ["accounts", "entries"]
    finally:
        installer.uninstall("ledger", drop_data=True)
    assert copies() == [] and ddl.addon_tables(SPACE_B) == []


def test_an_organization_without_the_addon_gets_no_copy(tmp_path):
    installer = get_kernel().installer
    installer.install(ledger_bundle(tmp_path), organization=ORG_A)
    try:
        bob = client_for(make_user("bob", ORG_B, perms=PERMS))
        fails(bob.get("/api/dynamic/ledger.accounts"), 404)
        fails(bob.post("/api/dynamic/ledger.accounts", {"code": "1", "name": "x"}, format="json"), 404)
        assert copies() == [SPACE_A]
        installer.disable("ledger", organization=ORG_A)
        alice = client_for(make_user("alice", ORG_A, perms=PERMS))
        fails(alice.get("/api/dynamic/ledger.accounts"), 404)
    finally:
        installer.uninstall("ledger", drop_data=True)


# -- the admin's data pages read and write the staff user's organization's copy ----------------


def test_admin_pages_follow_the_staff_users_organization(alice, bob):
    from django.contrib.auth.models import User
    from django.test import Client

    cash = post_account(alice, "1000", "Cash")
    post_account(bob, "2000", "Bank")
    User.objects.filter(username="alice").update(is_staff=True)
    admin = Client()
    admin.force_login(User.objects.get(username="alice"))
    accounts = "/admin/addon_ledger/accounts/"
    listing = admin.get(accounts)
    assert listing.status_code == 200
    assert "Cash" in listing.content.decode() and "Bank" not in listing.content.decode()
    assert admin.get(f"{accounts}{cash['id']}/change/").status_code == 200
    added = admin.post(f"{accounts}add/", {"code": "1100", "name": "Till"})
    assert added.status_code == 302, added.content[:2000]
    assert sorted(a["name"] for a in ok(alice.get("/api/dynamic/ledger.accounts"))["data"]) == [
        "Cash",
        "Till",
    ]
    assert [a["name"] for a in ok(bob.get("/api/dynamic/ledger.accounts"))["data"]] == ["Bank"]
