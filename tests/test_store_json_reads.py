"""The compiled reads (a get-one and an unfiltered list page) turn a few column types' stored
values straight into JSON (`ColumnType.json_from_db`: SQLite's uuid hex, its naive UTC
datetimes, its booleans) without the ORM's Python values. Over HTTP, on every column type of
tests/data/store_shop, they must answer exactly what the ORM's path answers (a filtered list
runs through the ORM and `to_json`), including for values metacore never writes itself but
other writers may leave in a SQLite file: upper-case or dashed uuids, a datetime with an
offset or with milliseconds only."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from store_support import ORG_A, client_for, ledger_manifest, make_user, ok, sample

from metacore.kernel import get_kernel
from tests.test_store_transfer import BASE, alice, shop, user_columns  # noqa: F401  # fixtures


def fill(client, shop, table, count):
    for i in range(count):
        data = {c.name: sample(c, i) for c in user_columns(shop, table) if c.references is None}
        if table == "countries":
            data["code"] = f"c{i}"  # two characters
        if i == 1:  # nulls where the column allows them
            data.update(
                {c.name: None for c in user_columns(shop, table) if not c.required and c.name in data}
            )
        ok(client.post(BASE + table, data, format="json"), 201)


def through_the_orm(client, url):
    """The same page through the ORM's path: a filter that keeps every row is not compiled."""
    return ok(client.get(url, {"f_id": "not_null:", "per_page": 100}))["data"]


@pytest.mark.parametrize("table", ["customers", "orders", "countries"])
def test_compiled_reads_answer_what_the_orm_path_answers(alice, shop, table):
    fill(alice, shop, table, 4)
    listed = ok(alice.get(BASE + table, {"per_page": 100}))["data"]
    assert len(listed) == 4
    by_id = {row["id"]: row for row in through_the_orm(alice, BASE + table)}
    assert {row["id"]: row for row in listed} == by_id
    for row in listed:
        assert ok(alice.get(f"{BASE}{table}/{row['id']}"))["data"] == by_id[row["id"]]


@pytest.fixture
def ledger(tmp_path, db):
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            ledger_manifest(
                {"name": "ref", "type": "uuid"},
                {"name": "at", "type": "timestamptz"},
                {"name": "flag", "type": "boolean"},
            )
        )
    )
    get_kernel().installer.install(tmp_path)
    yield get_kernel().registry.resolve("ledger.entries").model_class
    get_kernel().installer.uninstall("ledger", drop_data=True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="stored forms in SQLite's untyped columns")
def test_values_other_writers_leave_in_sqlite_read_as_the_orm_reads_them(ledger):
    user = make_user("carol", ORG_A, perms=["ledger.entries.read"])
    ref = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    stored = [  # (ref, at, flag) as a writer other than Django may leave them
        (ref.replace("-", "").upper(), "2024-01-02 03:04:05.123", 1),  # Now()'s milliseconds
        (ref, "2024-01-02 03:04:05+02:00", 0),  # dashed; with an offset
        (ref.replace("-", ""), "2024-01-02 03:04:05", 1),  # as Django writes them
        (None, None, None),
    ]
    with connection.cursor() as cursor:
        for values in stored:
            cursor.execute(
                f'INSERT INTO "{ledger._meta.db_table}" (id, organization_id, ref, at, flag) VALUES (%s, %s, %s, %s, %s)',
                [uuid.uuid4().hex, ORG_A.hex, *values],
            )
    client = client_for(user)
    listed = ok(client.get("/api/dynamic/ledger.entries", {"per_page": 100}))["data"]
    assert {row["id"]: row for row in listed} == {
        row["id"]: row for row in through_the_orm(client, "/api/dynamic/ledger.entries")
    }
    assert {row["ref"] for row in listed} == {ref, None}
    assert {row["at"] for row in listed} == {
        "2024-01-02T03:04:05.123000+00:00",
        "2024-01-02T03:04:05+02:00",
        "2024-01-02T03:04:05+00:00",
        None,
    }


def test_the_store_renders_json_as_drf_does(alice, shop):
    """orjson encodes the store's answers (metacore/api/renderers.py); what DRF's renderer
    promised still holds: JavaScript's line terminators escaped, `indent` honoured."""
    created = ok(
        alice.post(BASE + "countries", {"code": "lt", "name": "a\u2028b\u2029c"}, format="json"), 201
    )
    response = alice.get(f"{BASE}countries/{created['data']['id']}")
    assert b"a\\u2028b\\u2029c" in response.content
    assert b"\n" not in response.content and b'"success":true' in response.content
    indented = alice.get(f"{BASE}countries/{created['data']['id']}", HTTP_ACCEPT="application/json; indent=2")
    assert indented.content.startswith(b'{\n  "success": true')
    assert json.loads(indented.content) == json.loads(response.content)


def test_what_the_client_accepts_still_picks_the_renderer(alice, shop):
    """No `Accept` or `*/*` answers JSON without DRF's parsing; anything else is negotiated."""
    url = BASE + "countries"
    for accept in (None, "*/*", "application/json"):
        headers = {"HTTP_ACCEPT": accept} if accept else {}
        response = alice.get(url, **headers)
        assert response["Content-Type"] == "application/json", accept
    assert alice.get(url, HTTP_ACCEPT="text/html")["Content-Type"].startswith("text/html")
    assert alice.get(url, {"format": "api"})["Content-Type"].startswith("text/html")
    assert alice.get(url, HTTP_ACCEPT="application/xml").status_code == 406


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's declared column types")
def test_columns_declared_otherwise_than_django_would_read_as_the_orm_reads_them(ledger):
    """A host model's table need not declare `datetime` and `bool` (sqlite3 then converts
    nothing): the direct converters take text and 0/1 as the ORM's converters do."""
    table = ledger._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [table])
        ddl = cursor.fetchone()[0]
        cursor.execute(f'DROP TABLE "{table}"')
        cursor.execute(ddl.replace('"flag" bool', '"flag" integer').replace('"at" datetime', '"at" text'))
        cursor.execute(
            f'INSERT INTO "{table}" (id, organization_id, ref, at, flag) VALUES (%s, %s, %s, %s, %s)',
            [uuid.uuid4().hex, ORG_A.hex, uuid.uuid4().hex, "2024-01-02 03:04:05", 1],
        )
    client = client_for(make_user("carol", ORG_A, perms=["ledger.entries.read"]))
    listed = ok(client.get("/api/dynamic/ledger.entries"))["data"]
    assert listed == through_the_orm(client, "/api/dynamic/ledger.entries")
    assert (listed[0]["at"], listed[0]["flag"]) == ("2024-01-02T03:04:05+00:00", True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's direct converters")
def test_a_compiled_read_follows_a_changed_time_zone_setting(alice, shop):
    fill(alice, shop, "countries", 1)
    url = BASE + "countries"
    ok(alice.get(url)), ok(alice.get(url))  # compiled under USE_TZ=True
    with override_settings(USE_TZ=False):
        compiled = ok(alice.get(url))["data"]
        assert compiled == through_the_orm(alice, url)
    assert compiled[0]["created_at"][-6:] != "+00:00"


def test_the_store_renderer_writes_what_drf_writes():
    """Byte for byte, on what answers carry: str subclasses (error details, safe strings, even
    empty), datetimes, uuids, decimals, lazy text, JavaScript's line terminators."""
    import datetime
    import decimal

    from django.utils.safestring import mark_safe
    from django.utils.translation import gettext_lazy
    from rest_framework.exceptions import ErrorDetail
    from rest_framework.renderers import JSONRenderer as DRFRenderer

    from metacore.api.renderers import JSONRenderer

    data = {
        "errors": {"code": [ErrorDetail(""), ErrorDetail("too long", code="max_length")]},
        "safe": mark_safe(""),
        "at": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 1, 2),
        "id": uuid.UUID(int=5),
        "amount": decimal.Decimal("1.50"),
        "lazy": gettext_lazy("Not found."),
        "text": "a\u2028b\u2029c é",
        "big": 2**70,
        "rows": [{"n": 1, "ok": True, "none": None, "f": 1.5}],
    }
    assert JSONRenderer().render(data) == DRFRenderer().render(data)


def test_without_orjson_the_store_renders_with_drf():
    """orjson is a declared dependency but only a speed-up: where it cannot be imported,
    metacore imports and the store views keep DRF's renderer."""
    code = (
        "import sys; sys.modules['orjson'] = None\n"
        "import django; django.setup()\n"
        "from rest_framework.renderers import JSONRenderer\n"
        "from metacore.api.store_views import StoreView\n"
        "assert JSONRenderer in StoreView.renderer_classes, StoreView.renderer_classes\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sandbox_project.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
