"""Every model of every addon fixture (own and SDK corpus), served by the dynamic store over HTTP: create,
get, list with each operator, sort, search, paginate, update (PUT merge and PATCH), delete
(soft on soft-delete tables, hard otherwise). Each fixture is installed once for the module
with the real installer and uninstalled (with its data) afterwards."""

import uuid

import pytest
from addon_fixtures import bundle_params
from conftest import is_postgres
from store_support import ORG_A, as_query, client_for, fails, installed_addon, make_user, ok, same, sample

from metacore.kernel import get_kernel
from metacore.manifest.model import Manifest
from metacore.schema.types import get_type
from metacore.store.query import OPERATORS, search_columns

FIXTURES = bundle_params(where=lambda raw: bool(raw.get("models") or raw.get("model_definitions")))


@pytest.mark.conformance
def test_fixture_list_is_complete():
    names = {p.values[0].name for p in FIXTURES}
    assert {"tickets", "tickets-addon", "orders", "catalog", "fiscal_mexico-1.0.0.tar.gz"} <= names
    assert len(FIXTURES) >= 10


@pytest.fixture(scope="module", params=FIXTURES)
def addon(request, django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, request.param) as result:
        yield Manifest.model_validate(result.installation.manifest)


@pytest.fixture
def client(db):
    return client_for(make_user("owner", ORG_A, superuser=True))


def url(manifest, spec, row_id=None):
    base = f"/api/dynamic/{manifest.key}.{spec.table}"
    return f"{base}/{row_id}" if row_id else base


def create_row(client, manifest, spec, i):
    """Create row `i` of `spec` (and the rows its references point to, numbered apart so
    they never collide with the referenced model's own test rows)."""
    body = {}
    for column in spec.user_columns:
        if column.references is not None:
            target = manifest.model(column.references.table)
            body[column.name] = create_row(client, manifest, target, i + 10)["id"]
        else:
            body[column.name] = sample(column, i)
    data = ok(client.post(url(manifest, spec), body, format="json"), 201)["data"]
    for name, value in body.items():
        assert same(spec.column(name), data[name], value), (name, data[name], value)
    return data


def listed(client, manifest, spec, **params):
    return ok(client.get(url(manifest, spec), {"per_page": 200, **params}))


def ids(body):
    return [row["id"] for row in body["data"]]


def test_crud_round_trip(addon, client):
    for spec in addon.models:
        created = create_row(client, addon, spec, 0)
        assert (
            created["organization_id"] == str(ORG_A) if spec.org_scoped else "organization_id" not in created
        )
        assert uuid.UUID(created["id"]) and created["created_at"]
        assert ok(client.get(url(addon, spec, created["id"])))["data"] == created
        assert ids(listed(client, addon, spec)) == [created["id"]]

        plain = [c for c in spec.user_columns if c.references is None]
        first, last = plain[0], plain[-1]
        put = ok(client.put(url(addon, spec, created["id"]), {first.name: sample(first, 3)}, format="json"))[
            "data"
        ]
        assert same(first, put[first.name], sample(first, 3))
        for column in spec.user_columns:
            if column is not first:
                assert put[column.name] == created[column.name], f"PUT must keep {column.name}"
        patched = ok(
            client.patch(url(addon, spec, created["id"]), {last.name: sample(last, 4)}, format="json")
        )["data"]
        assert same(last, patched[last.name], sample(last, 4))
        assert same(first, patched[first.name], sample(first, 3))

        ok(client.delete(url(addon, spec, created["id"])))
        fails(client.get(url(addon, spec, created["id"])), 404)
        assert ids(listed(client, addon, spec)) == []
        kernel = get_kernel()  # a schema-per-tenant addon keeps the row in ORG_A's copy
        resolved = kernel.tenant_schemas.route(kernel.registry.resolve(f"{addon.key}.{spec.table}"), ORG_A)
        stored = resolved.model_class.objects.filter(pk=created["id"])
        if spec.soft_delete:
            assert stored.get().deleted_at is not None
        else:
            assert not stored.exists()


def _python(column, value):
    if value is None or get_type(column.type).name == "json":
        return value
    return get_type(column.type).parse(str(value))


def _operator_cases(column, values):
    """(parameter value, predicate over the python value) for every operator, or None as the
    predicate when the operator does not apply to the column's type (400 expected)."""
    ctype = get_type(column.type)
    v0, v1, v2 = (_python(column, v) for v in values)
    q0, q1, q2 = (as_query(column, v) for v in values)
    cases = {
        "eq": (f"eq:{q1}", lambda x: x == v1),
        "bare": (q1, lambda x: x == v1),
        "ne": (f"ne:{q1}", lambda x: x != v1),
        "in": (f"in:{q0},{q2}", lambda x: x in (v0, v2)),
        "nin": (f"nin:{q0},{q2}", lambda x: x not in (v0, v2)),
        "gt": (f"gt:{q1}", lambda x: x > v1),
        "gte": (f"gte:{q1}", lambda x: x >= v1),
        "lt": (f"lt:{q1}", lambda x: x < v1),
        "lte": (f"lte:{q1}", lambda x: x <= v1),
        "range": (f"range:{q0}|{q1}", lambda x: v0 <= x <= v1),
        "range_comma_open_max": (f"range:{q1},", lambda x: x >= v1),
        "range_open_min": (f"range:|{q1}", lambda x: x <= v1),
        "isnull": ("isnull:true", lambda x: False),
        "notnull": ("isnull:false", lambda x: True),
        "ilike": ("ilike:B1", lambda x: "b1" in x.lower()),
        "like": ("like:b1", lambda x: "b1" in x),
        "contains": ("contains:B1", lambda x: "b1" in x.lower()),
        "startswith": ("startswith:VB", lambda x: x.lower().startswith("vb")),
        "endswith": ("endswith:1Z", lambda x: x.lower().endswith("1z")),
    }
    if ctype.name == "json":
        cases["contains"] = ('contains:{"k": 1}', lambda x: x.get("k") == 1)
    result = {}
    for name, (raw, predicate) in cases.items():
        op = "eq" if name == "bare" else name.split("_")[0].replace("notnull", "isnull")
        lookup = OPERATORS[op]
        if ctype.name == "json" and op == "contains":
            applies = is_postgres()
        else:
            applies = lookup in ctype.lookups and (op != "range" or "lte" in ctype.lookups)
        result[name] = (raw, predicate if applies else None)
    return result


def _one_column_per_type(spec):
    """Operators depend on the column's type (and whether it is a reference), not its name."""
    chosen = {}
    for column in spec.user_columns:
        chosen.setdefault(
            (get_type(column.type).name, column.references is not None, column.required), column
        )
    return list(chosen.values())


def test_every_operator_on_every_column_type(addon, client):
    for spec in addon.models:
        rows = [create_row(client, addon, spec, i) for i in range(3)]
        for column in _one_column_per_type(spec):
            values = [row[column.name] for row in rows]
            for name, (raw, predicate) in _operator_cases(column, values).items():
                response = client.get(url(addon, spec), {f"f_{column.name}": raw, "per_page": 200})
                if predicate is None:
                    assert f"f_{column.name}" in fails(response, 400)["errors"], (
                        spec.table,
                        column.name,
                        name,
                    )
                    continue
                expected = {row["id"] for row in rows if predicate(_python(column, row[column.name]))}
                got = set(ids(ok(response)))
                assert got == expected, (spec.table, column.name, name, raw)


def test_sort_search_and_paginate(addon, client):
    for spec in addon.models:
        rows = [create_row(client, addon, spec, i) for i in range(5)]
        by_id = sorted(rows, key=lambda r: uuid.UUID(r["id"]))
        for column in spec.user_columns:
            if not get_type(column.type).sortable:
                fails(client.get(url(addon, spec), {"sortBy": column.name}), 400)
                continue
            key = lambda r: _python(column, r[column.name])  # noqa: E731
            ascending = [r["id"] for r in sorted(by_id, key=key)]
            descending = [r["id"] for r in sorted(by_id, key=key, reverse=True)]
            assert ids(listed(client, addon, spec, sortBy=column.name, order="asc")) == ascending, column.name
            assert ids(listed(client, addon, spec, sortBy=f"-{column.name}")) == descending, column.name
            assert ids(listed(client, addon, spec, sortBy=column.name, order="desc")) == descending, (
                column.name
            )

        if search_columns(spec):
            assert ids(listed(client, addon, spec, search="B1")) == [rows[1]["id"]]
            assert ids(listed(client, addon, spec, search="no-such-text")) == []
        else:
            assert "search" in fails(client.get(url(addon, spec), {"search": "x"}), 400)["errors"]

        seen = []
        for page, size in ((1, 2), (2, 2), (3, 1)):
            body = ok(client.get(url(addon, spec), {"per_page": 2, "page": page, "sortBy": "created_at,id"}))
            assert body["meta"] == {"total": 5, "page": page, "per_page": 2, "last_page": 3}
            assert len(body["data"]) == size
            seen += ids(body)
        assert sorted(seen) == sorted(r["id"] for r in rows)
        assert ok(client.get(url(addon, spec), {"per_page": 2, "page": 4}))["data"] == []
        assert ok(client.get(url(addon, spec), {"per_page": 5000}))["meta"]["per_page"] == 200


def test_export_then_import_round_trips_every_column(addon, client):
    """CSV export of two rows, the rows removed, the file imported: the same values back."""
    for spec in addon.models:
        rows = [create_row(client, addon, spec, i) for i in (1, 2)]
        ids_filter = "IN:" + ",".join(r["id"] for r in rows)
        response = client.get(url(addon, spec) + "/export", {"f_id": ids_filter})
        assert response.status_code == 200, response.content[:500]
        exported = b"".join(response.streaming_content)
        kernel = get_kernel()
        model_class = kernel.tenant_schemas.route(
            kernel.registry.resolve(f"{addon.key}.{spec.table}"), ORG_A
        ).model_class
        model_class.objects.filter(pk__in=[r["id"] for r in rows]).delete()
        before = set(ids(listed(client, addon, spec)))
        imported = client.post(url(addon, spec) + "/import", exported, content_type="text/csv")
        assert ok(imported, 201)["data"]["created"] == 2
        back = [r for r in listed(client, addon, spec)["data"] if r["id"] not in before]
        assert len(back) == 2
        for column in spec.user_columns:
            for original in rows:
                assert any(same(column, b[column.name], original[column.name]) for b in back), (
                    spec.key,
                    column.name,
                )
