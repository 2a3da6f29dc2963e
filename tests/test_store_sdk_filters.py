"""The official React runtime's filters against the list endpoint: `useDynamicFilters` from
@asteby/metacore-runtime-react (the serialisation DynamicTable and DynamicKanban send) runs
under Node 20 on this server's own metadata (tests/node/filter_probe.mjs); every query it
builds answers 200 with the rows upstream's meaning selects."""

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from store_support import ORG_A, client_for, installed_addon, make_user, ok

ROOT = Path(__file__).resolve().parent
NODE_DIR = ROOT / "node"
SHOP = ROOT / "data" / "store_shop"
ORDERS = "/api/dynamic/store_shop.orders"
RUNTIME = NODE_DIR / "node_modules" / "@asteby" / "metacore-runtime-react" / "dist" / "use-dynamic-filters.js"
STATUSES = ["open", "closed", "pending", "open", "closed", "pending"]


@pytest.fixture(scope="module", autouse=True)
def shop(django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, SHOP) as result:
        yield result


@pytest.fixture(scope="session")
def node():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 20 and npm are required for the SDK filter corpus"
    if not RUNTIME.is_file():
        run = subprocess.run([npm, "ci"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"npm ci failed in {NODE_DIR}: {run.stderr[-2000:]}"
    return node


@pytest.fixture
def alice(db):
    perms = [f"store_shop.orders.{a}" for a in ("read", "create")]
    return client_for(make_user("alice", ORG_A, perms=perms))


@pytest.fixture
def orders(alice):
    rows = []
    for i, status in enumerate(STATUSES):
        rows.append(
            ok(
                alice.post(
                    ORDERS,
                    {
                        "status": status,
                        "qty": i + 1,
                        "total": str(Decimal("1.25") * i),
                        "placed_on": (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
                        "shipped_at": (
                            datetime(2024, 1, 1, 23, 30, tzinfo=UTC) + timedelta(days=i)
                        ).isoformat(),
                    },
                    format="json",
                ),
                201,
            )["data"]
        )
    return rows


def _day(value):
    return value[:10]


#: name -> (what the user picks in the SDK's filter controls, which rows upstream returns)
SCENARIOS = {
    "select two values": (
        {"filters": {"status": ["open", "closed"]}},
        lambda r: r["status"] in ("open", "closed"),
    ),
    "select one value": ({"filters": {"status": ["pending"]}}, lambda r: r["status"] == "pending"),
    "text contains": ({"filters": {"status": ["ILIKE:PEN"]}}, lambda r: "pen" in r["status"]),
    "number range": ({"filters": {"qty": ["GTE:2", "LTE:4"]}}, lambda r: 2 <= r["qty"] <= 4),
    "number minimum": ({"filters": {"qty": ["GTE:3"]}}, lambda r: r["qty"] >= 3),
    "number maximum": ({"filters": {"qty": ["LTE:2"]}}, lambda r: r["qty"] <= 2),
    "decimal range": (
        {"filters": {"total": ["GTE:1.25", "LTE:2.5"]}},
        lambda r: Decimal("1.25") <= Decimal(r["total"]) <= Decimal("2.5"),
    ),
    "date range": (
        {"filters": {"placed_on": ["2024-01-02_2024-01-03"]}},
        lambda r: "2024-01-02" <= r["placed_on"] <= "2024-01-03",
    ),
    "date-time range covers whole days": (
        {"filters": {"shipped_at": ["2024-01-02_2024-01-03"]}},
        lambda r: "2024-01-02" <= _day(r["shipped_at"]) <= "2024-01-03",
    ),
    "cleared filter": ({"filters": {"status": []}}, lambda r: True),
    "locked default filter": ({"defaultFilters": {"qty": 3}}, lambda r: r["qty"] == 3),
    "empty default filter": ({"defaultFilters": {"status": ""}}, lambda r: True),
    "search": ({"search": "clos"}, lambda r: r["status"] == "closed"),
    "search with a filter": (
        {"search": "open", "filters": {"qty": ["LTE:1"]}},
        lambda r: r["status"] == "open" and r["qty"] <= 1,
    ),
}


def _as_query(params):
    """What the runtime's axios-style client puts on the wire for a params object."""
    return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in params.items()}


def test_every_query_the_runtime_builds_answers_with_upstreams_meaning(alice, orders, node):
    metadata = ok(alice.get("/api/metadata/table/store_shop.orders"))["data"]
    scenarios = [{"name": name, **picks} for name, (picks, _) in SCENARIOS.items()]
    run = subprocess.run(
        [node, "filter_probe.mjs"],
        cwd=NODE_DIR,
        input=json.dumps({"metadata": metadata, "scenarios": scenarios}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    built = {entry["name"]: entry["params"] for entry in json.loads(run.stdout)}
    # The runtime really spelled them its own way (not this test's).
    assert built["select two values"] == {"f_status": "IN:open,closed"}
    assert built["number range"] == {"f_qty": "RANGE:2,4"}
    assert built["text contains"] == {"f_status": "ILIKE:PEN"}
    for name, (_, wanted) in SCENARIOS.items():
        body = ok(alice.get(ORDERS, {**_as_query(built[name]), "per_page": 100}))
        expected = sorted(r["id"] for r in orders if wanted(r))
        assert sorted(r["id"] for r in body["data"]) == expected, (name, built[name])


def test_dynamic_tables_created_at_day_range(alice, orders):
    """DynamicTable's toolbar date picker sends `f_created_at=<from>_<to>` (yyyy-MM-dd), built
    inside the component (dynamic-table.tsx buildFilterParams), so it is spelled here."""
    today = datetime.now(UTC).date()
    inside = f"{today - timedelta(days=1)}_{today}"
    assert ok(alice.get(ORDERS, {"f_created_at": inside}))["meta"]["total"] == len(orders)
    before = f"{today - timedelta(days=9)}_{today - timedelta(days=2)}"
    assert ok(alice.get(ORDERS, {"f_created_at": before}))["meta"]["total"] == 0
