"""Import and export over HTTP (tests/data/store_shop, whose tables hold every column type):
CSV and JSON round trips, a bad row refusing the whole import with its row and line, validate
as a dry run, multipart uploads as the SDK's Import dialog sends them, permissions, tenancy,
soft delete, audit, and streaming."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from store_support import ORG_A, ORG_B, client_for, fails, installed_addon, make_user, ok, same, sample

from metacore.models import AuditRecord
from metacore.schema.types import get_type

SHOP = Path(__file__).parent / "data" / "store_shop"
BASE = "/api/dynamic/store_shop."
ALL = [
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
    return client_for(make_user("alice", ORG_A, perms=ALL))


@pytest.fixture
def bob(db):
    return client_for(make_user("bob", ORG_B, perms=ALL))


def body_of(response):
    assert response.status_code == 200, (response.status_code, getattr(response, "content", b"")[:500])
    assert response.streaming
    return b"".join(response.streaming_content)


def user_columns(shop, table):
    from metacore.kernel import get_kernel

    return get_kernel().registry.resolve(f"store_shop.{table}").spec.user_columns


def fill(client, shop, table, count, start=0, **fixed):
    rows = []
    for i in range(start, start + count):
        data = {c.name: sample(c, i) for c in user_columns(shop, table) if c.references is None}
        data.update(fixed)
        rows.append(ok(client.post(BASE + table, data, format="json"), 201)["data"])
    return rows


def listed(client, table):
    return ok(client.get(BASE + table, {"per_page": 200}))["data"]


def assert_same_rows(shop, table, expected, got):
    columns = user_columns(shop, table)
    key = lambda row: json.dumps(
        [get_type(c.type).to_json(row[c.name]) if False else str(row[c.name]) for c in columns[:1]]
    )
    assert len(expected) == len(got)
    for want, have in zip(sorted(expected, key=key), sorted(got, key=key), strict=True):
        for column in columns:
            assert same(column, have[column.name], want[column.name]), (
                column.name,
                have[column.name],
                want[column.name],
            )


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("table", ["orders", "customers"])
def test_export_then_import_round_trips_every_column_type(alice, shop, table, fmt):
    extra = {"email": None} if table == "customers" else {}
    originals = fill(alice, shop, table, 4, **extra)
    originals.append(
        fill(
            alice,
            shop,
            table,
            1,
            start=9,
            **{c.name: None for c in user_columns(shop, table) if not c.required and c.references is None},
        )[0]
    )
    exported = body_of(alice.get(BASE + table + "/export", {"format": fmt}))
    for row in originals:  # the import creates new rows: clear the table first
        ok(alice.delete(f"{BASE}{table}/{row['id']}"))
    upload = SimpleUploadedFile(f"{table}.{fmt}", exported)
    body = ok(alice.post(BASE + table + "/import", {"file": upload}), 201)["data"]
    assert body["created"] == len(originals) and body["errors"] == []
    assert "created_at" in body["ignored_columns"]
    assert_same_rows(shop, table, originals, listed(alice, table))


def test_csv_export_shape(alice, shop):
    fill(alice, shop, "orders", 2)
    text = body_of(
        alice.get(
            BASE + "orders/export",
            {
                "columns": "status,qty,meta,placed_on",
                "sortBy": "qty",
                "column_labels": json.dumps({"qty": "Qty"}),
            },
        )
    ).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["status", "Qty", "meta", "placed_on"]
    assert rows[1] == ["va0z", "10", '{"k": 0, "tags": ["t0"]}', "2024-01-01"]
    response = alice.get(BASE + "orders/export")
    assert (
        response["Content-Type"].startswith("text/csv")
        and 'filename="orders.csv"' in response["Content-Disposition"]
    )
    # An export with the columns' labels re-imports (labels map back to keys).
    ok(alice.post(BASE + "orders/import", {"file": SimpleUploadedFile("x.csv", text.encode())}), 201)


def test_export_applies_the_list_filters_tenancy_and_soft_delete(alice, bob, shop):
    mine = fill(alice, shop, "customers", 3, email=None)
    fill(bob, shop, "customers", 2, email=None)
    ok(alice.delete(f"{BASE}customers/{mine[0]['id']}"))
    rows = json.loads(body_of(alice.get(BASE + "customers/export", {"format": "json", "columns": "id,name"})))
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in mine[1:])
    rows = json.loads(
        body_of(alice.get(BASE + "customers/export", {"format": "json", "f_name": mine[2]["name"]}))
    )
    assert [r["name"] for r in rows] == [mine[2]["name"]] and "organization_id" not in rows[0]


def test_template_is_the_header(alice, shop):
    text = body_of(alice.get(BASE + "countries/export/template")).decode()
    assert text.splitlines() == ["code,name"]


def test_a_bad_row_refuses_the_whole_import_with_its_line(alice, shop):
    data = (
        "status,qty,notes_unused\n"
        if False
        else 'status,qty,meta\nopen,1,"{""a"": 1}"\n"two\nlines",2,\nopen,lots,\nopen,4,{bad\n'
    )
    response = alice.post(BASE + "orders/import", data, content_type="text/csv")
    body = fails(response, 422)
    report = body["data"]
    assert report["created"] == 0 and report["rowCount"] == 4 and report["valid"] == 2
    assert [(e["row"], e["line"], e["column"]) for e in report["errors"]] == [(3, 5, "qty"), (4, 6, "meta")]
    assert "row 3 (line 5)" in body["message"]
    assert listed(alice, "orders") == []
    # validate: the same report, 200, nothing written either.
    report = ok(alice.post(BASE + "orders/import/validate", data, content_type="text/csv"))["data"]
    assert report["valid"] == 2 and len(report["errors"]) == 2 and report["sample"][0]["status"] == "open"
    assert listed(alice, "orders") == []


def test_duplicates_within_the_file_and_unknown_columns(alice, shop):
    rows = [{"name": "a", "email": "x@y.test"}, {"name": "b", "email": "x@y.test"}, {"name": "c", "zz": 1}]
    report = fails(alice.post(BASE + "customers/import", rows, format="json"), 422)["data"]
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(2, "email"), (3, "zz")]
    assert "row 1" in report["errors"][0]["message"]
    assert listed(alice, "customers") == []


def test_json_bodies_and_envelopes(alice, shop):
    assert (
        ok(
            alice.post(
                BASE + "countries/import", {"data": [{"code": "MX", "name": "Mexico"}]}, format="json"
            ),
            201,
        )["data"]["created"]
        == 1
    )
    fails(alice.post(BASE + "countries/import", {"rows": []}, format="json"), 400)
    fails(alice.post(BASE + "countries/import", {"file": SimpleUploadedFile("a.json", b"{nope")}), 400)
    fails(alice.post(BASE + "countries/import", {"other": "x"}), 400)
    fails(alice.post(BASE + "countries/import", b"\xff\xfe,\n", content_type="text/csv"), 400)
    fails(alice.get(BASE + "countries/export", {"format": "xml"}), 400)
    fails(alice.get(BASE + "countries/export", {"columns": "code,nope"}), 400)


def test_permissions_and_audit(db, shop):
    reader = client_for(make_user("reader", ORG_A, perms=["store_shop.countries.read"]))
    fails(reader.post(BASE + "countries/import", [{"code": "AR", "name": "Argentina"}], format="json"), 403)
    fails(client_for(make_user("nobody", ORG_A)).get(BASE + "countries/export"), 403)
    fails(client_for(None).get(BASE + "countries/export"), 401)
    writer = client_for(
        make_user("writer", ORG_A, perms=["store_shop.countries.create", "store_shop.countries.read"])
    )
    ok(writer.post(BASE + "countries/import", [{"code": "AR", "name": "Argentina"}], format="json"), 201)
    body_of(writer.get(BASE + "countries/export"))
    kinds = list(AuditRecord.objects.filter(addon="store_shop").values_list("kind", flat=True))
    assert {"crud.import", "crud.export", "crud.create"} <= set(kinds)


def test_export_streams_chunk_by_chunk_under_asgi(shop, db):
    """Under ASGI Django would read a plain iterator whole before sending; the export hands it
    an async iterator that pulls one chunk at a time (in the request's thread)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    user = make_user("asgi", ORG_A, perms=ALL)
    client = AsyncClient()
    client.force_login(user)
    ok(
        client_for(user).post(
            BASE + "countries/import",
            [{"code": f"{chr(65 + i // 26)}{chr(65 + i % 26)}", "name": f"n{i}"} for i in range(600)],
            format="json",
        ),
        201,
    )

    async def fetch():
        response = await client.get(BASE + "countries/export", {"columns": "code"})
        assert response.status_code == 200 and response.is_async
        return [chunk async for chunk in response.streaming_content]

    chunks = async_to_sync(fetch)()
    assert len(chunks) >= 2
    assert b"".join(chunks).decode().splitlines()[0] == "code" and len(b"".join(chunks).splitlines()) == 601
