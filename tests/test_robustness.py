"""Hostile input answers a JSON 4xx, never a 500 or an HTML page (issue 12): the error
envelope and its machine codes everywhere under /api/, input limits (JSON depth, body
size, integers, datetimes, decimals, NUL bytes) and database errors that name manifest
columns. Each input the issue reported has its regression test here."""

import io
import json
import logging
import tarfile
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from store_support import ORG_A, client_for, installed_addon, make_user

from metacore.models import AuditRecord

SHOP = Path(__file__).parent / "data" / "store_shop"
CUSTOMERS, ORDERS = "/api/dynamic/customers", "/api/dynamic/store_shop.orders"
ALL_PERMS = [
    f"store_shop.{t}.{a}"
    for t in ("customers", "orders", "countries")
    for a in ("read", "create", "update", "delete")
]
DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"name": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"


@pytest.fixture(scope="module", autouse=True)
def shop(django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, SHOP) as result:
        yield result


@pytest.fixture
def alice(db):
    return client_for(make_user("alice", ORG_A, perms=ALL_PERMS))


@pytest.fixture
def admin(db):
    return client_for(make_user("root", ORG_A, superuser=True))


def refused(response, status, code=None):
    """The documented error envelope, with `status` and (when given) `code`."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["errors"], dict) and isinstance(body["code"], str), body
    if code is not None:
        assert body["code"] == code, body
    return body


def customer(client, **values):
    response = client.post(CUSTOMERS, {"name": "Ann", **values}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


# -- the envelope outside the views ---------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/nope", "/api/dynamic", "/api/metacore/nope/deeper", "/api/"])
def test_unknown_api_routes_are_json_404(alice, settings, path, debug):
    settings.DEBUG = debug  # Django's technical 404 page under DEBUG
    refused(alice.get(path), 404, "not_found")


def test_paths_outside_the_api_prefix_keep_django_pages(alice):
    response = alice.get("/not-an-api-route")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_codes_of_drf_errors(alice, db):
    refused(client_for(None).get(CUSTOMERS), 401, "not_authenticated")
    refused(client_for(make_user("nobody", ORG_A)).get(CUSTOMERS), 403, "permission_denied")
    refused(alice.get(f"{CUSTOMERS}/{uuid.uuid4()}"), 404, "not_found")
    refused(alice.delete(CUSTOMERS), 405, "method_not_allowed")
    refused(alice.post(CUSTOMERS, {"name": "x"}), 415, "unsupported_media_type")
    refused(alice.generic("POST", CUSTOMERS, "{bad", content_type="application/json"), 400, "parse_error")
    refused(alice.post(CUSTOMERS, {"name": 5 * "x" * 100}, format="json"), 400, "invalid")


def test_unique_conflict_names_the_manifest_column(alice):
    customer(alice, email="a@example.com")
    body = refused(
        alice.post(CUSTOMERS, {"name": "B", "email": "a@example.com"}, format="json"), 409, "conflict"
    )
    assert "email" in body["errors"] and "addon_" not in json.dumps(body)


def test_a_database_constraint_race_names_the_column_not_the_table(alice, monkeypatch):
    """The pre-check can lose a race; the database constraint then decides and the 409
    still names `email`, never `addon_store_shop__customers.email`."""
    from metacore.store.service import StoreService

    monkeypatch.setattr(StoreService, "_check_unique", lambda *args, **kwargs: None)
    customer(alice, email="race@example.com")
    body = refused(
        alice.post(CUSTOMERS, {"name": "B", "email": "race@example.com"}, format="json"), 409, "conflict"
    )
    text = json.dumps(body)
    assert body["errors"] == {"email": ["a row with this value already exists"]}, body
    assert "addon_" not in text and "UNIQUE" not in text and "duplicate key" not in text


# -- 500: a request id, no internals ----------------------------------------------------------


def exploding_resolver(user, request):
    raise RuntimeError("secret detail /srv/app/var/bundles/.staging-123")


def test_an_uncaught_exception_is_a_json_500_with_a_request_id_even_under_debug(alice, settings, caplog):
    settings.DEBUG = True
    settings.METACORE = {**settings.METACORE, "TENANT_RESOLVER": f"{__name__}.exploding_resolver"}
    with caplog.at_level(logging.ERROR, logger="metacore.api"):
        response = alice.get(CUSTOMERS, HTTP_X_REQUEST_ID="req-500-test")
    body = refused(response, 500, "server_error")
    assert body["request_id"] == "req-500-test" and response["X-Request-ID"] == "req-500-test"
    assert "secret" not in response.content.decode() and "RuntimeError" not in response.content.decode()
    assert any("req-500-test" in r.getMessage() and r.exc_info for r in caplog.records)
    audit = AuditRecord.objects.get(kind="api.error", request_id="req-500-test")
    assert audit.details["exception"] == "RuntimeError" and audit.target == CUSTOMERS


# -- body size and JSON depth ---------------------------------------------------------------


def test_a_body_over_the_upload_limit_is_413(alice, settings):
    big = json.dumps({"name": "x", "notes": "n" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    refused(alice.generic("POST", CUSTOMERS, big, content_type="application/json"), 413, "request_too_large")
    form = "notes=" + "n" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)  # read by Django, not DRF
    refused(alice.generic("POST", CUSTOMERS, form, content_type="application/x-www-form-urlencoded"), 413)


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT])
def test_deeply_nested_json_is_400_in_every_body(alice, admin, body):
    row = customer(alice)
    for client, method, path in [
        (alice, "POST", CUSTOMERS),
        (alice, "PATCH", f"{CUSTOMERS}/{row['id']}"),
        (alice, "PUT", f"{CUSTOMERS}/{row['id']}"),
        (alice, "POST", f"{CUSTOMERS}/{row['id']}/action/anything"),
        (admin, "PUT", "/api/metacore/enforcer"),
        (admin, "POST", "/api/metacore/enforcer"),
        (admin, "POST", "/api/metacore/installations/store_shop/settings"),
        (admin, "POST", "/api/metacore/installations/other/"),
    ]:
        response = client.generic(method, path, body, content_type="application/json")
        if response.status_code == 405:
            continue
        refused(response, 400, "nesting_too_deep")


def test_json_nested_below_the_limit_is_accepted(alice):
    value = json.loads("[" * 60 + "]" * 60)
    response = alice.post(ORDERS, {"customer_id": customer(alice)["id"], "meta": value}, format="json")
    assert response.status_code == 201, response.content


def test_nan_in_a_body_is_400(alice):
    refused(
        alice.generic("POST", CUSTOMERS, '{"name": NaN}', content_type="application/json"), 400, "parse_error"
    )


def _bundle_with_manifest(text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = text.encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_bundle_with_a_deeply_nested_manifest_is_refused(admin, tmp_path):
    manifest = '{"key": "deep", "name": "Deep", "version": "1.0.0", "x": ' + DEEP + "}"
    upload = io.BytesIO(_bundle_with_manifest(manifest))
    upload.name = "deep.tar.gz"
    body = refused(admin.post("/api/metacore/installations/deep", {"bundle": upload}), 400)
    assert "nested deeper" in body["message"] and "staging" not in body["message"]
    path = tmp_path / "deep.tar.gz"
    path.write_bytes(_bundle_with_manifest(manifest))
    with pytest.raises(Exception) as raised:
        call_command("metacore_install", str(path))
    assert "nested deeper" in str(raised.value)


# -- query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"page": str(2**63)},
        {"page": str(2**64 + 1)},
        {"f_big": f"eq:{2**64}"},
        {"f_big": f"gt:{-(2**63) - 1}"},
        {"f_qty": f"in:1,{2**40}"},
        {"f_total": "eq:12345678901234567890"},
        {"f_total": "gt:1e400"},
        {"f_total": "range:0|99999999999.999"},
        {"f_shipped_at": "eq:9999-12-31T23:59:59-14:00"},
        {"f_shipped_at": "gte:0001-01-01T00:00:00+14:00"},
        {"f_placed_on": "eq:10000-01-01"},
        {"search": "a\x00b"},
        {"f_status": "eq:a\x00b"},
        {"f_meta": 'contains:{"a": "\\u0000"}'},
    ],
)
def test_out_of_range_list_parameters_are_400(alice, params):
    body = refused(alice.get(ORDERS, params), 400, "invalid")
    assert set(body["errors"]) & set(params), body


@pytest.mark.parametrize(
    "params",
    [
        {"offset": str(2**63)},
        {"offset": str(2**62 + 1)},
        {"q": "9999-12-31T23:59:59-14:00", "field": "shipped_at"},
        {"q": "a\x00b"},
        {"q": "a\x00b", "field": "status"},
        {"q": "12345678901234567890", "field": "total"},
        {"q": str(2**64), "field": "big"},
        {"ids": f"{uuid.uuid4()}\x00"},
    ],
)
def test_out_of_range_options_parameters_are_400(alice, params):
    refused(alice.get("/api/options/store_shop.orders", params), 400, "invalid")


@pytest.mark.parametrize("q", ["a\x00b", "x" * 5000])
def test_search_parameters_never_500(alice, q):
    response = alice.get("/api/search/store_shop.customers", {"q": q})
    if "\x00" in q:
        refused(response, 400, "invalid")
    else:
        assert response.status_code == 200, response.content


# -- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"big": 2**63},
        {"big": -(2**63) - 1},
        {"qty": 2**31},
        {"qty": 10**30},
        {"total": "12345678901234567890"},
        {"total": 1e300},
        {"shipped_at": "9999-12-31T23:59:59-14:00"},
        {"placed_on": "10000-01-01"},
        {"status": "open\x00"},
        {"meta": {"k": "a\x00b"}},
        {"meta": {"k\x00": 1}},
    ],
)
def test_out_of_range_body_values_are_400_on_both_databases(alice, values):
    body = {"customer_id": customer(alice)["id"], **values}
    response = alice.post(ORDERS, body, format="json")
    refused(response, 400, "invalid")
    assert set(response.json()["errors"]) == set(values), response.json()


def test_nul_in_text_is_refused_not_stored(alice):
    response = alice.post(CUSTOMERS, {"name": "Ann\x00Lee"}, format="json")
    assert refused(response, 400, "invalid")["errors"].keys() == {"name"}
