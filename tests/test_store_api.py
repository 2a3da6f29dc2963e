"""The dynamic store over HTTP with a purpose-built addon (tests/data/store_shop): tenancy,
user permissions, write validation, uniqueness, references, soft/hard delete, bad input of
every kind, query counts, audit rows and on-commit events."""

import uuid
from pathlib import Path

import pytest
from conftest import is_postgres
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from store_support import ORG_A, ORG_B, client_for, fails, installed_addon, make_user, ok

from metacore.context import CallContext
from metacore.events import data_changed
from metacore.kernel import get_kernel
from metacore.models import AuditRecord

SHOP = Path(__file__).parent / "data" / "store_shop"
CUSTOMERS, ORDERS, COUNTRIES = (
    "/api/dynamic/customers",
    "/api/dynamic/store_shop.orders",
    "/api/dynamic/Countries",
)
ALL_PERMS = [
    f"store_shop.{t}.{a}"
    for t in ("customers", "orders", "countries")
    for a in ("read", "create", "update", "delete")
]


@pytest.fixture(scope="module", autouse=True)
def shop(django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, SHOP) as result:
        yield result


@pytest.fixture
def alice(db):
    return client_for(make_user("alice", ORG_A, perms=ALL_PERMS))


@pytest.fixture
def bob(db):
    return client_for(make_user("bob", ORG_B, perms=ALL_PERMS))


def customer(client, name="Ann", **extra):
    return ok(client.post(CUSTOMERS, {"name": name, **extra}, format="json"), 201)["data"]


@pytest.fixture
def events():
    received = []

    def receiver(sender, event, **kwargs):
        received.append(event)

    data_changed.connect(receiver)
    yield received
    data_changed.disconnect(receiver)


# -- envelopes, defaults, routing ---------------------------------------------------------


def test_create_applies_defaults_and_sets_system_columns(alice):
    row = customer(alice, email="ann@example.com")
    assert row["vip"] is False and row["notes"] is None and row["deleted_at"] is None
    assert row["organization_id"] == str(ORG_A)
    assert row["created_at"] == row["updated_at"]
    order = ok(alice.post(ORDERS, {"customer_id": row["id"], "total": "12.5"}, format="json"), 201)["data"]
    assert order["qty"] == 1 and order["status"] == "open" and order["total"] == "12.50"


def test_trailing_slash_and_model_spellings_are_accepted(alice):
    row = customer(alice)
    for path in ("/api/dynamic/customers/", "/api/dynamic/Customers", "/api/dynamic/STORE_SHOP.customers/"):
        assert ok(alice.get(path))["meta"]["total"] == 1
    ok(alice.get(f"/api/dynamic/customers/{row['id']}/"))


def test_list_envelope(alice):
    for i in range(3):
        customer(alice, name=f"c{i}")
    body = ok(alice.get(CUSTOMERS, {"per_page": 2, "sortBy": "name", "order": "desc"}))
    assert set(body) == {"success", "data", "meta"}
    assert body["meta"] == {"total": 3, "page": 1, "per_page": 2, "last_page": 2}
    assert [r["name"] for r in body["data"]] == ["c2", "c1"]
    past_the_end = ok(alice.get(CUSTOMERS, {"per_page": 2, "page": 5}))
    assert past_the_end["data"] == [] and past_the_end["meta"] == {
        "total": 3,
        "page": 5,
        "per_page": 2,
        "last_page": 2,
    }
    assert ok(alice.get(CUSTOMERS, {"f_name": "none"}))["meta"] == {
        "total": 0,
        "page": 1,
        "per_page": 20,
        "last_page": 1,
    }


def test_multi_key_sort_with_order_list(alice):
    for name, vip in (("b", True), ("a", False), ("c", True)):
        customer(alice, name=name, vip=vip)
    body = ok(alice.get(CUSTOMERS, {"sortBy": "vip,name", "order": "desc,asc"}))
    assert [r["name"] for r in body["data"]] == ["b", "c", "a"]


def test_search_escapes_like_wildcards(alice):
    customer(alice, name="100% cotton")
    customer(alice, name="1000 cotton")
    customer(alice, name="a_b")
    customer(alice, name="axb")
    assert [r["name"] for r in ok(alice.get(CUSTOMERS, {"search": "100%"}))["data"]] == ["100% cotton"]
    assert [r["name"] for r in ok(alice.get(CUSTOMERS, {"search": "a_b"}))["data"]] == ["a_b"]
    assert [r["name"] for r in ok(alice.get(CUSTOMERS, {"f_name": "ilike:%"}))["data"]] == ["100% cotton"]


# -- tenancy ------------------------------------------------------------------------------


def test_tenants_never_see_each_other(alice, bob):
    mine = customer(alice, name="Alice's", email="a@example.com")
    theirs = customer(bob, name="Bob's", email="b@example.com")
    assert [r["id"] for r in ok(alice.get(CUSTOMERS))["data"]] == [mine["id"]]
    # ids, filters and search
    fails(alice.get(f"{CUSTOMERS}/{theirs['id']}"), 404)
    assert ok(alice.get(CUSTOMERS, {"f_id": theirs["id"]}))["data"] == []
    assert ok(alice.get(CUSTOMERS, {"f_organization_id": str(ORG_B)}))["data"] == []
    assert ok(alice.get(CUSTOMERS, {"search": "Bob"}))["data"] == []
    # writes to the other tenant's row, and bodies trying to move a row
    fails(alice.put(f"{CUSTOMERS}/{theirs['id']}", {"name": "hijack"}, format="json"), 404)
    fails(alice.patch(f"{CUSTOMERS}/{theirs['id']}", {"name": "hijack"}, format="json"), 404)
    fails(alice.delete(f"{CUSTOMERS}/{theirs['id']}"), 404)
    body = fails(alice.put(f"{CUSTOMERS}/{mine['id']}", {"organization_id": str(ORG_B)}, format="json"), 400)
    assert "organization_id" in body["errors"]
    fails(alice.post(CUSTOMERS, {"name": "x", "organization_id": str(ORG_B)}, format="json"), 400)
    # references must name a row of the caller's tenant
    body = fails(alice.post(ORDERS, {"customer_id": theirs["id"]}, format="json"), 400)
    assert "customer_id" in body["errors"]
    assert ok(bob.get(f"{CUSTOMERS}/{theirs['id']}"))["data"]["name"] == "Bob's"


def test_user_without_tenant_is_refused_on_org_scoped_models_only(db):
    client = client_for(make_user("drifter", None, perms=ALL_PERMS))
    body = fails(client.get(CUSTOMERS), 403)
    assert "organization" in body["message"]
    fails(client.post(CUSTOMERS, {"name": "x"}, format="json"), 403)
    ok(client.post(COUNTRIES, {"code": "MX", "name": "Mexico"}, format="json"), 201)
    assert ok(client.get(COUNTRIES))["meta"]["total"] == 1


def test_tenant_resolver_setting_is_used(alice, settings):
    customer(alice)
    settings.METACORE = {**settings.METACORE, "TENANT_RESOLVER": "test_store_api.resolve_to_org_b"}
    assert ok(alice.get(CUSTOMERS))["data"] == []


def resolve_to_org_b(user, request):
    return str(ORG_B)


# -- permissions --------------------------------------------------------------------------


def test_anonymous_gets_401(db):
    fails(client_for(None).get(CUSTOMERS), 401)
    fails(client_for(None).post(CUSTOMERS, {"name": "x"}, format="json"), 401)


def test_missing_permission_gets_403_naming_it(db):
    client = client_for(make_user("reader", ORG_A, perms=["store_shop.customers.read"]))
    ok(client.get(CUSTOMERS))
    body = fails(client.post(CUSTOMERS, {"name": "x"}, format="json"), 403)
    assert body["message"] == 'permission denied: missing "store_shop.customers.create"'
    fails(client.get(ORDERS), 403)


def test_group_grant_and_superuser(db):
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="sales")
    group.permissions.add(Permission.objects.get(codename="store_shop.customers.read"))
    member = make_user("member", ORG_A)
    member.groups.add(group)
    ok(client_for(User.objects.get(pk=member.pk)).get(CUSTOMERS))
    ok(
        client_for(make_user("root", ORG_A, superuser=True)).post(CUSTOMERS, {"name": "x"}, format="json"),
        201,
    )


# -- writes -------------------------------------------------------------------------------


def test_put_merges_and_patch_is_partial(alice):
    row = customer(alice, email="e@example.com", notes="keep me")
    put = ok(alice.put(f"{CUSTOMERS}/{row['id']}", {"name": "Renamed"}, format="json"))["data"]
    assert (put["name"], put["email"], put["notes"]) == ("Renamed", "e@example.com", "keep me")
    assert put["updated_at"] > row["updated_at"] and put["created_at"] == row["created_at"]
    patched = ok(alice.patch(f"{CUSTOMERS}/{row['id']}", {"notes": None}, format="json"))["data"]
    assert (patched["name"], patched["notes"]) == ("Renamed", None)


def test_validation_names_each_field(alice):
    cases = [
        ({}, "name", "required"),
        ({"name": None}, "name", "null"),
        ({"name": "x" * 41}, "name", "40"),
        ({"name": "x", "vip": "maybe"}, "vip", "boolean"),
        ({"name": "x", "nope": 1}, "nope", "unknown field"),
        ({"name": "x", "id": str(uuid.uuid4())}, "id", "cannot be set"),
        ({"name": "x", "created_at": "2024-01-01T00:00:00Z"}, "created_at", "cannot be set"),
        ({"name": "x", "deleted_at": None}, "deleted_at", "cannot be set"),
    ]
    for body, field, words in cases:
        errors = fails(alice.post(CUSTOMERS, body, format="json"), 400)["errors"]
        assert field in errors and words in " ".join(errors[field]).lower(), (body, errors)
    order_cases = [
        ({"total": "abc"}, "total"),
        ({"total": "12345678901.5"}, "total"),
        ({"qty": 2**31}, "qty"),
        ({"qty": "1.5"}, "qty"),
        ({"placed_on": "2024-13-01"}, "placed_on"),
        ({"shipped_at": "yesterday"}, "shipped_at"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"customer_id": str(uuid.uuid4())}, "customer_id"),
    ]
    for body, field in order_cases:
        assert field in fails(alice.post(ORDERS, body, format="json"), 400)["errors"], body


def test_unique_conflict_is_409(alice, bob):
    row = customer(alice, email="same@example.com")
    body = fails(alice.post(CUSTOMERS, {"name": "b", "email": "same@example.com"}, format="json"), 409)
    assert "email" in body["errors"]
    other = customer(alice, name="c", email="other@example.com")
    fails(alice.patch(f"{CUSTOMERS}/{other['id']}", {"email": "same@example.com"}, format="json"), 409)
    ok(alice.patch(f"{CUSTOMERS}/{row['id']}", {"email": "same@example.com"}, format="json"))
    ok(alice.post(COUNTRIES, {"code": "MX", "name": "Mexico"}, format="json"), 201)
    fails(bob.post(COUNTRIES, {"code": "MX", "name": "Mexico again"}, format="json"), 409)


def test_soft_delete_hides_row_and_hard_delete_removes_it(alice):
    row = customer(alice)
    ok(alice.delete(f"{CUSTOMERS}/{row['id']}"))
    fails(alice.get(f"{CUSTOMERS}/{row['id']}"), 404)
    fails(alice.delete(f"{CUSTOMERS}/{row['id']}"), 404)
    fails(alice.patch(f"{CUSTOMERS}/{row['id']}", {"name": "zombie"}, format="json"), 404)
    assert ok(alice.get(CUSTOMERS, {"f_deleted_at": "isnull:false"}))["data"] == []
    model = get_kernel().registry.resolve("customers").model_class
    assert model.objects.get(pk=row["id"]).deleted_at is not None
    # a soft-deleted row can no longer be referenced
    fails(alice.post(ORDERS, {"customer_id": row["id"]}, format="json"), 400)

    country = ok(alice.post(COUNTRIES, {"code": "AR", "name": "Argentina"}, format="json"), 201)["data"]
    ok(alice.delete(f"{COUNTRIES}/{country['id']}"))
    assert (
        not get_kernel().registry.resolve("countries").model_class.objects.filter(pk=country["id"]).exists()
    )


def test_references_to_a_shared_table_and_restricted_delete(alice, bob):
    country = ok(alice.post(COUNTRIES, {"code": "CL", "name": "Chile"}, format="json"), 201)["data"]
    customer(alice, country_id=country["id"])
    customer(bob, name="bob's", country_id=country["id"])  # countries are not org-scoped
    body = fails(alice.delete(f"{COUNTRIES}/{country['id']}"), 409)
    assert body["message"]
    assert ok(alice.get(f"{COUNTRIES}/{country['id']}"))["data"]["code"] == "CL"


# -- bad input of every kind -> clear 4xx -------------------------------------------------


@pytest.mark.parametrize(
    "params, name",
    [
        ({"f_qty": "foo:bar"}, "f_qty"),
        ({"f_nope": "1"}, "f_nope"),
        ({"f_qty": "gt:many"}, "f_qty"),
        ({"f_qty": "IN:1,many"}, "f_qty"),
        ({"f_qty": "range:1|2|3"}, "f_qty"),
        ({"f_qty": "RANGE:x,"}, "f_qty"),
        ({"f_qty": "ilike:1"}, "f_qty"),
        ({"f_placed_on": "gte:tomorrow"}, "f_placed_on"),
        ({"f_shipped_at": "lt:not-a-date"}, "f_shipped_at"),
        ({"f_customer_id": "gt:" + str(uuid.UUID(int=1))}, "f_customer_id"),
        ({"f_customer_id": "eq:zzz"}, "f_customer_id"),
        ({"f_meta": "eq:1"}, "f_meta"),
        ({"f_status": "isnull:perhaps"}, "f_status"),
        ({"sortBy": "nope"}, "sortBy"),
        ({"sortBy": "meta"}, "sortBy"),
        ({"order": "sideways"}, "order"),
        ({"sortBy": "qty,status", "order": "asc,desc,asc"}, "order"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": "-5"}, "per_page"),
    ],
)
def test_bad_query_parameters_are_400_naming_them(alice, params, name):
    body = fails(alice.get(ORDERS, params), 400)
    assert name in body["errors"] and name in body["message"]


def test_unknown_operator_is_a_literal_value_as_upstream_or_400(alice):
    ok(alice.post(ORDERS, {"status": "foo:bar"}, format="json"), 201)
    assert [r["status"] for r in ok(alice.get(ORDERS, {"f_status": "foo:bar"}))["data"]] == ["foo:bar"]
    body = fails(alice.get(ORDERS, {"f_qty": "foo:1"}), 400)
    assert body["errors"] == {"f_qty": ['unknown operator "foo"']}


def test_bad_requests_never_500(alice):
    fails(alice.get("/api/dynamic/nope"), 404)
    fails(alice.get(f"{CUSTOMERS}/not-a-uuid"), 404)
    fails(alice.get(f"{CUSTOMERS}/{uuid.uuid4()}"), 404)
    fails(alice.generic("POST", CUSTOMERS, "{not json", content_type="application/json"), 400)
    fails(alice.generic("POST", CUSTOMERS, "[1, 2]", content_type="application/json"), 400)
    fails(alice.generic("POST", CUSTOMERS, '"text"', content_type="application/json"), 400)
    fails(alice.post(CUSTOMERS, {"name": "x"}), 415)  # multipart form: JSON only
    fails(alice.generic("PUT", f"{CUSTOMERS}/{uuid.uuid4()}", "{bad", content_type="application/json"), 400)
    fails(alice.post(f"{CUSTOMERS}/{uuid.uuid4()}", {}, format="json"), 405)
    fails(alice.delete(CUSTOMERS), 405)


# -- cost ---------------------------------------------------------------------------------


def test_list_query_count_does_not_grow_with_per_page(alice):
    for i in range(30):
        customer(alice, name=f"c{i}")
    alice.get(CUSTOMERS)  # warm: the registry is built, the user's permissions cached

    def queries(per_page):
        with CaptureQueriesContext(connection) as captured:
            body = ok(alice.get(CUSTOMERS, {"per_page": per_page, "search": "c", "f_vip": "false"}))
        assert len(body["data"]) == per_page
        return len(captured)

    assert queries(1) == queries(10) == queries(30)


def test_list_query_count_is_fixed(alice, django_assert_num_queries):
    for i in range(5):
        customer(alice, name=f"c{i}")
    alice.get(CUSTOMERS)
    # registry freshness + COUNT + page (the test role is a superuser: no RLS binding needed)
    with django_assert_num_queries(3):
        ok(alice.get(CUSTOMERS, {"per_page": 5}))


# -- audit and events ---------------------------------------------------------------------


def test_writes_are_audited_and_published_after_commit(alice, events, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = customer(alice, email="x@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.patch(f"{CUSTOMERS}/{row['id']}", {"notes": "n"}, format="json"))
    with django_capture_on_commit_callbacks(execute=True):
        ok(alice.delete(f"{CUSTOMERS}/{row['id']}"))
    assert [(e.name, e.id, e.tenant) for e in events] == [
        (f"store_shop.Customers.{action}", row["id"], str(ORG_A))
        for action in ("created", "updated", "deleted")
    ]
    created, updated, deleted = events
    assert created.before is None and created.after["email"] == "x@example.com"
    assert updated.fields == ("notes",) and updated.before["notes"] is None and updated.after["notes"] == "n"
    assert deleted.after is None and deleted.before["id"] == row["id"]
    assert created.actor_id == str(User.objects.get(username="alice").pk)
    kinds = list(
        AuditRecord.objects.filter(addon="store_shop", kind__startswith="crud.")
        .order_by("timestamp")
        .values_list("kind", "target")
    )
    assert kinds == [
        (f"crud.{a}", f"store_shop.customers:{row['id']}") for a in ("create", "update", "delete")
    ]


def test_rolled_back_write_emits_nothing(alice, events, django_capture_on_commit_callbacks):
    user = User.objects.get(username="alice")
    ctx = CallContext.for_user(user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                get_kernel().store.create(ctx, "customers", {"name": "ghost"})
                raise RuntimeError("roll back")
    assert callbacks == [] and events == []
    assert not AuditRecord.objects.filter(addon="store_shop", kind="crud.create").exists()
    assert ok(alice.get(CUSTOMERS))["data"] == []


def test_failed_write_emits_nothing(alice, events, django_capture_on_commit_callbacks):
    customer(alice, email="dup@example.com")
    events.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        fails(alice.post(CUSTOMERS, {"name": "b", "email": "dup@example.com"}, format="json"), 409)
    assert callbacks == [] and events == []


def test_reads_audited_only_when_enabled(alice, settings):
    row = customer(alice)
    ok(alice.get(CUSTOMERS))
    assert not AuditRecord.objects.filter(kind="crud.read").exists()
    settings.METACORE = {**settings.METACORE, "AUDIT_READS": True}
    ok(alice.get(CUSTOMERS))
    ok(alice.get(f"{CUSTOMERS}/{row['id']}"))
    targets = list(AuditRecord.objects.filter(kind="crud.read").values_list("target", flat=True))
    assert sorted(targets) == sorted(["store_shop.customers", f"store_shop.customers:{row['id']}"])


# -- PostgreSQL row-level security --------------------------------------------------------


@pytest.mark.skipif(not is_postgres(), reason="row-level security is a PostgreSQL feature")
def test_row_level_security_binds_a_non_superuser_role_to_the_tenant(alice, bob):
    """The second wall: a query WITHOUT the tenant filter, run as a non-superuser role inside
    a store transaction bound to tenant A, still sees only tenant A's rows, and cannot write
    a row for tenant B."""
    from metacore.store import rls

    customer(alice, name="mine")
    customer(bob, name="theirs")
    table = connection.ops.quote_name(get_kernel().registry.resolve("customers").model_class._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass", [table]
        )
        assert cursor.fetchone() == (True, True)
        # Role creation and grants roll back with the test's transaction.
        cursor.execute("CREATE ROLE metacore_rls_probe NOLOGIN NOSUPERUSER NOBYPASSRLS")
        cursor.execute("GRANT USAGE ON SCHEMA addon_store_shop TO metacore_rls_probe")
        cursor.execute(f"GRANT SELECT, INSERT ON {table} TO metacore_rls_probe")
        cursor.execute("GRANT SELECT ON metacore_registrystate TO metacore_rls_probe")
        bob_ctx = CallContext(user=User.objects.get(username="bob"), tenant=str(ORG_B))
        get_kernel().permissions.effective(bob_ctx.user)  # cached on the user: no auth tables as the probe
        with pytest.raises(_Undo):
            with transaction.atomic():  # rolled back: undoes SET LOCAL ROLE and the tenant binding
                cursor.execute("SET LOCAL ROLE metacore_rls_probe")
                rls.set_tenant(connection, None)
                cursor.execute(f"SELECT count(*) FROM {table}")
                assert cursor.fetchone()[0] == 2  # no tenant bound: open (installer, maintenance)
                rls.set_tenant(connection, str(ORG_A))
                cursor.execute(f"SELECT name FROM {table}")
                assert [r[0] for r in cursor.fetchall()] == ["mine"]
                with pytest.raises(Exception, match="row-level security"):
                    with transaction.atomic():
                        cursor.execute(
                            f"INSERT INTO {table} (id, organization_id, name, vip, created_at, updated_at)"
                            " VALUES (%s, %s, 'smuggled', false, now(), now())",
                            [uuid.uuid4(), ORG_B],
                        )
                # The store itself binds the tenant when its role is subject to RLS.
                rls.set_tenant(connection, None)
                rls.forget(connection)
                try:
                    page = get_kernel().store.list(bob_ctx, "customers", {})
                    cursor.execute("SELECT current_setting('metacore.tenant')")
                    assert cursor.fetchone()[0] == str(ORG_B)
                finally:
                    rls.forget(connection)
                assert [r["name"] for r in page.rows] == ["theirs"]
                raise _Undo
        cursor.execute("SELECT current_user = session_user")
        assert cursor.fetchone()[0] is True


class _Undo(Exception):
    pass


@pytest.mark.parametrize(
    "params",
    [
        {"f_total": "gt:1e30"},
        {"f_total": "gt:1e-30"},
        {"f_total": "gt:NaN"},
        {"f_total": "range:-1e400|"},
        {"f_weight": "gt:1e308"},
        {"f_weight": "lt:inf"},
        {"f_big": "gt:99999999999999999999999"},
        {"f_shipped_at": "gt:0001-01-01T00:00:00+05:00"},
        {"f_shipped_at": "lt:9999-12-31T23:59:59-05:00"},
        {"f_placed_on": "gt:0001-01-01"},
        {"f_status": "eq:a\x00b"},
        {"search": "a\x00b"},
        {"f_meta": 'contains:{"a": "\\u0000"}'},
        {"page": "99999999999999999999999", "per_page": "200"},
    ],
    ids=str,
)
def test_hostile_filter_values_never_500(alice, params):
    response = alice.get(ORDERS, params)
    assert response.status_code in (200, 400), response.content
    assert response.json()["success"] is (response.status_code == 200)


@pytest.mark.parametrize(
    "body",
    [
        {"total": "1e30"},
        {"total": "NaN"},
        {"weight": 1e308},
        {"weight": "Infinity"},
        {"big": 2**70},
        {"shipped_at": "0001-01-01T00:00:00+05:00"},
        {"status": "a\x00b"},
        {"meta": {"a": "\x00"}},
        {"placed_on": "0000-01-01"},
    ],
    ids=str,
)
def test_hostile_write_values_never_500(alice, body):
    response = alice.post(ORDERS, body, format="json")
    assert response.status_code in (201, 400), response.content
    assert response.json()["success"] is (response.status_code == 201)


# -- telemetry ----------------------------------------------------------------------------


def test_store_requests_are_traced_and_counted_by_model_and_status(alice, otel):
    customer(alice)
    fails(alice.get(f"{CUSTOMERS}/{uuid.uuid4()}"), 404)
    created = otel.spans("metacore.store.create")[0].attributes
    assert created["metacore.addon"] == "store_shop" and created["metacore.model"] == "customers"
    assert created["metacore.tenant"] == str(ORG_A)
    counted = {
        (p.attributes["metacore.action"], p.attributes["metacore.status"]): p.value
        for p in otel.metric_points("metacore.requests")
    }
    assert counted[("create", 201)] == 1 and counted[("read", 404)] == 1


def test_a_write_and_its_audit_row_go_in_one_block_with_one_insert(alice):
    """The audit row is the write block's last statement, one INSERT, no savepoint of its own."""
    customer(alice)  # warm
    with CaptureQueriesContext(connection) as captured:
        row = customer(alice, name="Bo")
    statements = [q["sql"] for q in captured.captured_queries]
    audit = [i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "metacore_auditrecord"')]
    assert len(audit) == 1
    assert statements[audit[0] + 1].startswith(
        "RELEASE SAVEPOINT"
    )  # the write's block (the test's transaction holds it)
    assert sum(sql.startswith("SAVEPOINT") for sql in statements) == 1
    assert AuditRecord.objects.filter(kind="crud.create", target=f"store_shop.customers:{row['id']}").exists()
