"""Lists whose cost does not grow with the table: the default order (newest first, `id`
breaking ties) read from an index the installer creates with the table, `count=exact|
estimated|none`, and keyset (`cursor`) pages that visit every row once, in order, however
deep."""

import base64
import json
import uuid

import pytest
from django.db import connection

from metacore.kernel import get_kernel, reset_kernel
from tests.store_support import ledger_manifest

pytestmark = pytest.mark.django_db

LIST = "/api/dynamic/ledger.entries"
MANIFEST = ledger_manifest(
    {"name": "memo", "type": "text", "not_null": True},
    {"name": "rank", "type": "integer", "not_null": True},
    {"name": "note", "type": "text"},
)


@pytest.fixture
def entries(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    reset_kernel()
    get_kernel().installer.install(tmp_path)
    yield get_kernel().registry.resolve("ledger.entries").model_class
    get_kernel().installer.uninstall("ledger", drop_data=True)
    reset_kernel()


@pytest.fixture
def reader(entries):
    """A member of one tenant allowed to read, and 7 rows of it (3 sharing one created_at)."""
    from django.utils import timezone
    from rest_framework.test import APIClient

    from tests.store_support import make_user

    tenant = uuid.uuid4()
    now = timezone.now()
    for i in range(7):
        entries.objects.create(
            id=uuid.uuid4(),
            organization_id=tenant,
            memo=f"m{i}",
            rank=i % 3,
            created_at=now if i < 3 else now.replace(microsecond=0) - timezone.timedelta(minutes=i),
            updated_at=now,
        )
    entries.objects.create(id=uuid.uuid4(), organization_id=uuid.uuid4(), memo="other", rank=0)
    client = APIClient()
    client.force_authenticate(make_user("ledger-reader", tenant, perms=["ledger.entries.read"]))
    return client


def listing(client, **params):
    response = client.get(LIST, params)
    assert response.status_code == 200, response.content
    return response.json()


def walk(client, **params):
    """Every cursor page from the first: the rows' memos and the metas."""
    memos, metas, cursor = [], [], ""
    while cursor is not None:
        body = listing(client, cursor=cursor, **params)
        memos += [row["memo"] for row in body["data"]]
        metas.append(body["meta"])
        cursor = body["meta"]["next_cursor"]
    return memos, metas


@pytest.mark.parametrize("sort", [{}, {"sortBy": "rank,-memo"}, {"sortBy": "-rank", "order": "desc"}])
def test_cursor_pages_visit_every_row_once_in_the_pages_order(reader, sort):
    expected = [row["memo"] for row in listing(reader, per_page=100, **sort)["data"]]
    memos, metas = walk(reader, per_page=2, **sort)
    assert memos == expected and len(expected) == 7
    assert [len(m) for m in metas] == [3] * 4 and metas[0] == {
        "total": 7,
        "per_page": 2,
        "next_cursor": metas[0]["next_cursor"],
    }


def test_count_none_and_estimated(reader):
    body = listing(reader, per_page=5, count="none")
    assert body["meta"] == {"total": None, "page": 1, "per_page": 5, "last_page": None}
    assert len(body["data"]) == 5
    # A small table: the estimate is below the threshold, so the count is exact on both databases.
    assert listing(reader, per_page=5, count="estimated")["meta"]["total"] == 7
    assert walk(reader, per_page=4, count="none")[1][-1] == {
        "total": None,
        "per_page": 4,
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "params,field",
    [
        ({"count": "some"}, "count"),
        ({"cursor": "", "page": "2"}, "cursor"),
        ({"cursor": "bm90LWpzb24"}, "cursor"),
        ({"cursor": "", "sortBy": "note"}, "cursor"),  # a nullable sort key
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()}, "cursor"),
        (
            {"cursor": base64.urlsafe_b64encode(b'{"o":["-created_at","id"],"v":[true,"x"]}').decode()},
            "cursor",
        ),
    ],
)
def test_bad_count_or_cursor_answers_400_naming_it(reader, params, field):
    response = reader.get(LIST, params)
    assert response.status_code == 400 and field in response.json()["errors"], response.content


def test_a_cursor_of_another_order_is_refused(reader):
    cursor = listing(reader, per_page=2, cursor="")["meta"]["next_cursor"]
    response = reader.get(LIST, {"cursor": cursor, "sortBy": "rank"})
    assert response.status_code == 400 and "another sortBy" in response.json()["errors"]["cursor"][0]


def test_a_default_page_is_read_in_index_order(entries):
    """The planner's own words: no sort step for the default order of one tenant's rows."""
    from metacore.store.query import parse_list_query

    spec = get_kernel().registry.resolve("ledger.entries").spec
    tenant = uuid.uuid4()
    query = parse_list_query(spec, {}, using="default")
    sql, params = query.apply(entries.objects.filter(organization_id=tenant))[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "default_order" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # An empty table: a plain index scan is the option the planner would take on a large one.
            for option in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                cursor.execute(f"SET LOCAL {option} = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "default_order" in plan and "Sort" not in plan, plan


def test_a_cursor_page_starts_its_index_scan_at_the_cursor(entries):
    """The planner's own words: the cursor's first sort key bounds the index scan (an OR of
    the keys alone is only a filter, so a deep page read every row before it)."""
    from metacore.store.query import parse_list_query

    spec = get_kernel().registry.resolve("ledger.entries").spec
    first = parse_list_query(spec, {"cursor": ""}, using="default")
    cursor = first.cursor_after({"created_at": "2026-01-01T00:00:00+00:00", "id": str(uuid.uuid4())})
    query = parse_list_query(spec, {"cursor": cursor}, using="default")
    rows = query.page_after(query.apply(entries.objects.filter(organization_id=uuid.uuid4())))
    sql, params = rows[:50].query.sql_with_params()
    with connection.cursor() as db:
        if connection.vendor == "sqlite":
            db.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in db.fetchall())
            assert "default_order" in plan and "(organization_id=? AND created_at<" in plan, plan
        else:
            for option in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                db.execute(f"SET LOCAL {option} = off")
            db.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in db.fetchall())
            assert "Index Cond: ((organization_id = " in plan and "created_at <=" in plan, plan
