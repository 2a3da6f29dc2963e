"""Deep pages: a list at page 1 and at page 10,000 (50 rows a page) of one tenant's
1,000,000 rows, through the dynamic API (Django's test client: middleware, DRF, the store),
for each way of paging docs/api.md offers:

- `page=N&count=exact`      OFFSET pages with a COUNT(*) of the tenant's rows (the default)
- `page=N&count=estimated`  OFFSET pages with PostgreSQL's planner estimate instead
- `page=N&count=none`       OFFSET pages, no count
- `cursor=<c>&count=none`   keyset pages: rows after the previous page's last row

Each figure is ms per request, and the page-10,000/page-1 ratio measured in the same run,
the two requests interleaved (goal for `cursor`: ~1x, a deep page costs what the first does).
The rows are written by one INSERT .. SELECT over `generate_series` (PostgreSQL) or a
recursive CTE (SQLite) into the addon's table, then ANALYZEd.

SQLite runs at a tenth of the size (100,000 rows, page 1 against page 1,000: the same
middle-of-the-table depth) to keep `make bench` short; BENCH_PAGES_ROWS sets the size on
either database (the deep page is always the middle one).
"""

import os
import sys
import uuid
from datetime import UTC, datetime

from bench._support import install_manifest, items_manifest, paired, setup_django, vendor

PER_PAGE = 50
ADDON = "benchpages"
MODEL = f"{ADDON}.items"
COLUMNS = [
    {"name": "created_at", "type": "timestamptz", "not_null": True},
    {"name": "updated_at", "type": "timestamptz", "not_null": True},
]


def _rows():
    default = 1_000_000 if vendor() == "postgresql" else 100_000
    return int(os.environ.get("BENCH_PAGES_ROWS", default))


def _load(model, org, rows):
    """`rows` rows of tenant `org`, one second apart, newest first, in one statement."""
    from django.db import connection, transaction

    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (id, organization_id, title, created_at, updated_at)"
                " SELECT gen_random_uuid(), %s, 'item ' || i, %s - i * interval '1 second', %s"
                " FROM generate_series(1, %s) AS i",
                [org, start, start, rows],
            )
        else:  # Django's SQLite forms: uuids as 32 hex digits, date-times as naive UTC text
            cursor.execute(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s)"
                f" INSERT INTO {table} (id, organization_id, title, created_at, updated_at)"
                " SELECT lower(hex(randomblob(16))), %s, 'item ' || i,"
                " strftime('%%Y-%%m-%%d %%H:%%M:%%S', '2026-01-01', '-' || i || ' seconds'),"
                " '2026-01-01 00:00:00' FROM n",
                [rows, uuid.UUID(org).hex],
            )
        cursor.execute(f"ANALYZE {table}")


def _deep_cursor(org, deep_page):
    """The cursor a client holds after reading pages 1 .. deep_page - 1: that of the last row
    before the deep page (read here by offset once, as the client would have walked to it)."""
    from metacore.kernel import get_kernel
    from metacore.store.query import parse_list_query

    resolved = get_kernel().registry.resolve(MODEL)
    query = parse_list_query(resolved.spec, {"cursor": ""})
    model = resolved.model_class
    last = (
        model.objects.filter(organization_id=org)
        .order_by(*query.ordering)
        .values("created_at", "id")[(deep_page - 1) * PER_PAGE - 1]
    )
    return query.cursor_after({"created_at": last["created_at"].isoformat(), "id": str(last["id"])})


def main():
    setup_django()
    from django.contrib.auth.models import User
    from django.db import connection
    from rest_framework.test import APIClient

    from metacore.models import TenantMembership

    rows = _rows()
    deep = rows // PER_PAGE // 2
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = None  # persistent, as served
    kernel = install_manifest(items_manifest(ADDON, "Bench pages", COLUMNS))
    user = User.objects.create_superuser("bench-pages", "pages@example.com", None)
    try:
        org = str(TenantMembership.objects.create(user=user).organization_id)
        model = kernel.registry.resolve(MODEL).model_class
        _load(model, org, rows)
        client = APIClient()
        client.force_authenticate(user)
        url = f"/api/dynamic/{MODEL}?per_page={PER_PAGE}"

        def get(query, first_id=None):
            def call():
                response = client.get(f"{url}&{query}")
                data = response.json().get("data") if response.status_code == 200 else None
                if not data or len(data) != PER_PAGE:
                    raise AssertionError(f"{query}: {response.status_code} {response.content[:300]!r}")
                return data[0]["id"]

            return call

        cursor = _deep_cursor(org, deep)
        # The deep cursor page starts where page `deep` does.
        assert get(f"cursor={cursor}&count=none")() == get(f"page={deep}&count=none")()
        cases = [
            ("page, count=exact", "page=1&count=exact", f"page={deep}&count=exact"),
            ("page, count=estimated", "page=1&count=estimated", f"page={deep}&count=estimated"),
            ("page, count=none", "page=1&count=none", f"page={deep}&count=none"),
            ("cursor, count=none", "cursor=&count=none", f"cursor={cursor}&count=none"),
        ]
        print(
            f"pages bench on {vendor()}: {rows:,} rows of one tenant, {PER_PAGE} a page, page 1 vs page"
            f" {deep:,}; load average {os.getloadavg()[0]:.2f}"
        )
        print(f"  {'paging':24} {'page 1 ms':>10} {f'page {deep:,} ms':>16} {'ratio':>8}")
        for name, first, deep_query in cases:
            a, b = paired(get(first), get(deep_query), number=3, repeat=5, warmup=1)
            print(f"  {name:24} {a * 1e3:10.2f} {b * 1e3:16.2f} {b / a:7.2f}x")
        print(f"  load average {os.getloadavg()[0]:.2f} at end")
        sys.stdout.flush()
    finally:
        kernel.installer.uninstall(ADDON, drop_data=True)
        user.delete()
        connection.settings_dict["CONN_MAX_AGE"] = saved


if __name__ == "__main__":
    main()
