"""What SDK frontends otherwise fetch one by one or send as upstream does: `fields=` and
`expand=` on list and single-row reads (permission- and tenant-checked), `created_by_id`
filled by the server, and `Idempotency-Key` on create, import and actions."""

import json
import tempfile
from pathlib import Path

import pytest
from store_support import ORG_A, ORG_B, client_for, fails, installed_addon, make_user, ok

SHOP = Path(__file__).parent / "data" / "store_shop"
ORDERS, CUSTOMERS = "/api/dynamic/store_shop.orders", "/api/dynamic/store_shop.customers"
ALL = [
    f"store_shop.{t}.{a}"
    for t in ("customers", "orders", "countries")
    for a in ("read", "create", "update", "delete")
]
NOTES = {
    "key": "notes_app",
    "name": "Notes",
    "version": "1.0.0",
    "model_definitions": [
        {
            "model_key": "Notes",
            "table_name": "notes",
            "label": "Notes",
            "org_scoped": True,
            "columns": [
                {"name": "title", "type": "string", "size": 80, "required": True},
                {"name": "created_by_id", "type": "bigint"},
            ],
        }
    ],
}


@pytest.fixture(scope="module", autouse=True)
def shop(django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, SHOP) as result:
        yield result


@pytest.fixture(scope="module")
def notes_app(django_db_setup, django_db_blocker):
    folder = Path(tempfile.mkdtemp(prefix="notes-app-"))
    (folder / "manifest.json").write_text(json.dumps(NOTES))
    with installed_addon(django_db_blocker, folder) as result:
        yield result


@pytest.fixture(autouse=True)
def fresh_cache():
    """Idempotency answers are keyed by user id, which a rolled-back test may hand out again."""
    from django.core.cache import caches

    caches["default"].clear()


@pytest.fixture
def alice(db):
    return client_for(make_user("alice", ORG_A, perms=ALL))


def test_fields_and_expand_on_list_and_row(alice):
    country = ok(
        alice.post("/api/dynamic/store_shop.countries", {"code": "MX", "name": "Mexico"}, format="json"), 201
    )["data"]
    ann = ok(alice.post(CUSTOMERS, {"name": "Ann", "country_id": country["id"]}, format="json"), 201)["data"]
    order = ok(alice.post(ORDERS, {"customer_id": ann["id"], "qty": 2}, format="json"), 201)["data"]
    ok(alice.post(ORDERS, {"qty": 3}, format="json"), 201)
    rows = ok(alice.get(ORDERS, {"fields": "qty", "expand": "customer_id", "sortBy": "qty"}))["data"]
    assert rows[0] == {"id": order["id"], "qty": 2, "customer_id": ann["id"], "customer": ann}
    assert rows[1]["customer"] is None and set(rows[1]) == {"id", "qty", "customer_id", "customer"}
    row = ok(alice.get(f"{CUSTOMERS}/{ann['id']}", {"expand": "country_id", "fields": "name"}))["data"]
    assert row == {"id": ann["id"], "name": "Ann", "country_id": country["id"], "country": country}
    assert set(ok(alice.get(ORDERS, {"fields": "status"}))["data"][0]) == {"id", "status"}


def test_expand_is_permission_and_tenant_checked(alice, db):
    ann = ok(alice.post(CUSTOMERS, {"name": "Ann"}, format="json"), 201)["data"]
    ok(alice.post(ORDERS, {"customer_id": ann["id"]}, format="json"), 201)
    orders_only = client_for(make_user("olga", ORG_A, perms=["store_shop.orders.read"]))
    body = fails(orders_only.get(ORDERS, {"expand": "customer_id"}), 403)
    assert "store_shop.customers.read" in body["message"]
    assert len(ok(orders_only.get(ORDERS))["data"]) == 1
    # Another organization's customer id written straight into the row does not expand.
    from metacore.kernel import get_kernel

    bob = client_for(make_user("bob", ORG_B, perms=ALL))
    theirs = ok(bob.post(CUSTOMERS, {"name": "Zed"}, format="json"), 201)["data"]
    get_kernel().registry.resolve("store_shop.orders").model_class.objects.update(customer_id=theirs["id"])
    assert ok(alice.get(ORDERS, {"expand": "customer_id"}))["data"][0]["customer"] is None


@pytest.mark.parametrize(
    "params, name",
    [({"fields": "nope"}, "fields"), ({"expand": "qty"}, "expand"), ({"expand": "nope"}, "expand")],
)
def test_bad_fields_and_expand_are_400(alice, params, name):
    assert name in fails(alice.get(ORDERS, params), 400)["errors"]


def test_created_by_id_is_filled_by_the_server(notes_app, alice):
    user = make_user("carl", ORG_A, perms=["notes_app.notes.create", "notes_app.notes.read"])
    client = client_for(user)
    row = ok(
        client.post("/api/dynamic/notes_app.notes", {"title": "a", "created_by_id": 999}, format="json"), 201
    )["data"]
    assert row["created_by_id"] == user.pk
    # A table without the column ignores it (upstream models all have it; SDK forms send it).
    ok(alice.post(ORDERS, {"qty": 1, "created_by_id": 5}, format="json"), 201)


def test_idempotency_key_on_create_and_import(alice):
    first = alice.post(CUSTOMERS, {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = alice.post(CUSTOMERS, {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert ok(first, 201)["data"] == ok(again, 201)["data"] and again["Idempotent-Replay"] == "true"
    assert ok(alice.get(CUSTOMERS))["meta"]["total"] == 1
    fails(alice.post(CUSTOMERS, {"name": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"), 422)
    ok(alice.post(CUSTOMERS, {"name": "Twice"}, format="json", HTTP_IDEMPOTENCY_KEY="k2"), 201)
    for _ in range(2):
        ok(
            alice.post(
                CUSTOMERS + "/import", [{"name": "Imported"}], format="json", HTTP_IDEMPOTENCY_KEY="k3"
            ),
            201,
        )
    for _ in range(2):
        ok(
            alice.post(
                CUSTOMERS + "/import", "name\nCsv\n", content_type="text/csv", HTTP_IDEMPOTENCY_KEY="k5"
            ),
            201,
        )
    assert ok(alice.get(CUSTOMERS))["meta"]["total"] == 4
    # Another user with the same key is another request.
    other = client_for(make_user("eve", ORG_A, perms=ALL))
    ok(other.post(CUSTOMERS, {"name": "Once"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"), 201)
    assert ok(alice.get(CUSTOMERS))["meta"]["total"] == 5
    # Errors are not kept: the corrected retry runs.
    fails(alice.post(CUSTOMERS, {"name": None}, format="json", HTTP_IDEMPOTENCY_KEY="k4"), 400)
    ok(alice.post(CUSTOMERS, {"name": "Fixed"}, format="json", HTTP_IDEMPOTENCY_KEY="k4"), 201)
    fails(alice.post(CUSTOMERS, {}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 300), 400)


def test_fields_and_expand_are_in_the_openapi(alice):
    # alice is an authenticated client: the schema follows the API's authentication
    doc = alice.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    path = next(p for p in doc["paths"] if p.endswith("dynamic/store_shop.orders"))
    for operation in (doc["paths"][path]["get"], doc["paths"][path + "/{id}"]["get"]):
        assert {"fields", "expand"} <= {p["name"] for p in operation["parameters"]}
