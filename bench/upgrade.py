"""Upgrade on PostgreSQL: adding a nullable column to a 1,000,000-row table, next to the
same DDL run by hand with psql in the same run; and planning a 50-table upgrade.

Reported: the hand-run `ALTER TABLE ... ADD COLUMN` (psql's own `\\timing`), metacore's DDL
phase (the schema editor running the plan's operations) and the whole `upgrade()` call
(plan, data checks, SQL preview, DDL, bookkeeping, commit), each as a ratio to the psql
time; and whether PostgreSQL rewrote the table (its relfilenode changes on a rewrite).
"""

import json
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench._support import setup_django, vendor

ROWS = 1_000_000
KEY = "benchupg"
# Every table is organization-scoped under the default shared tenancy, so the rows need one.
ORGANIZATION = uuid.uuid4()


def _bundle(directory: Path, version: str, models) -> Path:
    root = directory / f"{KEY}-{version}"
    root.mkdir()
    manifest = {"key": KEY, "name": "Upgrade bench", "version": version, "model_definitions": models}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _big(extra=()):
    return [
        {
            "table_name": "big",
            "model_key": "big",
            "label": "Big",
            "columns": [
                {"name": "title", "type": "string", "size": 80},
                {"name": "n", "type": "bigint"},
                *extra,
            ],
        }
    ]


def _wide(tables=50, columns=20, extra=False):
    models = []
    for t in range(tables):
        cols = [
            {"name": f"c{c}", "type": ["string", "int", "text", "bool", "datetime"][c % 5]}
            for c in range(columns)
        ]
        if extra:
            cols.append({"name": "added", "type": "text"})
        models.append({"table_name": f"t{t}", "model_key": f"t{t}", "label": f"T{t}", "columns": cols})
    return models


def _psql_ms(sql: str) -> float:
    from django.db import connection

    s = connection.settings_dict
    out = subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-h",
            s["HOST"] or "127.0.0.1",
            "-p",
            str(s["PORT"] or 5432),
            "-U",
            s["USER"],
            "-d",
            s["NAME"],
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "\\timing on",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(re.search(r"Time: ([\d.]+) ms", out).group(1))


def _relfilenode(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT relfilenode FROM pg_class WHERE oid = %s::regclass", [f"addon_{KEY}.{table}"])
        return cursor.fetchone()[0]


def main():
    setup_django()
    if vendor() != "postgresql":
        print("upgrade bench: needs PostgreSQL (run with DATABASE_URL=postgres://...); skipped on", vendor())
        return
    from django.db import connection

    import metacore.installer.upgrade as upgrade_module
    from metacore.kernel import get_kernel

    installer = get_kernel().installer
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        installer.install(_bundle(tmp, "1.0.0", _big()))
        with connection.cursor() as cursor:
            cursor.execute(
                f'INSERT INTO "addon_{KEY}"."big" (id, organization_id, title, n) '
                "SELECT gen_random_uuid(), %s, 'row ' || g, g FROM generate_series(1, %s) g",
                [ORGANIZATION, ROWS],
            )
            cursor.execute(f'ANALYZE "addon_{KEY}"."big"')

        hand_ms = _psql_ms(f'ALTER TABLE "addon_{KEY}"."big" ADD COLUMN by_hand timestamptz NULL')
        _psql_ms(f'ALTER TABLE "addon_{KEY}"."big" DROP COLUMN by_hand')

        ddl_seconds = []
        original = upgrade_module.run_steps

        def timed(old, steps, editor):
            start = time.perf_counter()
            original(old, steps, editor)
            ddl_seconds.append(time.perf_counter() - start)

        upgrade_module.run_steps = timed
        before = _relfilenode("big")
        start = time.perf_counter()
        try:
            installer.upgrade(_bundle(tmp, "1.1.0", _big([{"name": "due_at", "type": "datetime"}])))
        finally:
            upgrade_module.run_steps = original
        total_ms = (time.perf_counter() - start) * 1000
        rewritten = _relfilenode("big") != before
        ddl_ms = ddl_seconds[0] * 1000
        print(
            f"add nullable column to {ROWS:,} rows: psql by hand {hand_ms:.1f} ms; metacore DDL phase {ddl_ms:.1f} ms "
            f"(ratio {ddl_ms / hand_ms:.2f}x); whole upgrade() {total_ms:.1f} ms (ratio {total_ms / hand_ms:.2f}x); "
            f"table rewritten: {'yes' if rewritten else 'no'}"
        )
        installer.uninstall(KEY, drop_data=True)

        installer.install(_bundle(tmp, "2.0.0", _wide()))
        new = _bundle(tmp, "2.1.0", _wide(extra=True))
        start = time.perf_counter()
        plan = installer.plan(new)
        plan_ms = (time.perf_counter() - start) * 1000
        statements = ";\n".join(plan.sql) + ";"
        hand_ms = _psql_ms(f"BEGIN; {statements} ROLLBACK;")
        print(
            f"plan for 50 tables x 20 columns (+1 column each): {plan_ms:.1f} ms for {len(plan.steps)} steps, "
            f"{len(plan.sql)} statements; running those statements by hand in psql: {hand_ms:.1f} ms "
            f"(plan / hand-run DDL: {plan_ms / hand_ms:.2f}x)"
        )
        installer.uninstall(KEY, drop_data=True)


if __name__ == "__main__":
    main()
