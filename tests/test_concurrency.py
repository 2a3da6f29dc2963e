"""50 concurrent clients against real Daphne servers over a file database (SQLite in WAL
with IMMEDIATE transactions from `metacore.settings.sqlite_options()`, or PostgreSQL):
no 5xx, no lost write; row counts and audit rows match the successful responses (issue 12).

Two server processes share the database, so writers contend across processes as well as
across threads, on one row and spread over many."""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from metacore.kernel import get_kernel, reset_kernel
from metacore.models import AuditRecord
from tests.hubkit import make_user, new_tenant, token_for
from tests.livekit import Daphne

pytestmark = pytest.mark.django_db(transaction=True)
CLIENTS = 50
COUNTERS = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": "counters", "name": "Counters", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [
        {
            "key": "Counters",
            "table": "counters",
            "label": "Counters",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "name", "type": "text", "not_null": True},
                {"name": "value", "type": "int", "not_null": True, "default": "0"},
                {"name": "code", "type": "varchar", "size": 40, "unique": True},
                {"name": "created_at", "type": "timestamptz", "default": "now()"},
                {"name": "updated_at", "type": "timestamptz", "default": "now()"},
            ],
        }
    ],
}
URL = "/api/dynamic/counters"


@pytest.fixture
def counters(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(COUNTERS))
    reset_kernel()
    get_kernel().installer.install(tmp_path)
    user = make_user("writer", new_tenant())
    get_kernel().permissions.grant(
        user, [f"counters.counters.{a}" for a in ("read", "create", "update", "delete")]
    )
    yield token_for(user)
    get_kernel().installer.uninstall("counters", drop_data=True)
    reset_kernel()


@pytest.fixture
def servers(counters):
    started = Daphne.start(2)
    yield started
    for server in started:
        server.terminate()


def hammer(servers, token, requests):
    """Run `requests` [(method, path, body)] from CLIENTS threads, round-robin over the
    servers; returns [(request, status, body)] in request order."""
    barrier = threading.Barrier(CLIENTS)

    def client(index):
        barrier.wait()  # every client starts at once
        out = []
        for position in range(index, len(requests), CLIENTS):
            method, path, body = requests[position]
            # A generous timeout: writers queue by design, and CI machines are shared.
            status, answer = servers[position % len(servers)].request(method, path, token, body, timeout=120)
            out.append((position, status, answer))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for chunk in pool.map(client, range(CLIENTS)) for r in chunk]
    return [(requests[p], status, body) for p, status, body in sorted(results, key=lambda r: r[0])]


def assert_no_server_errors(results):
    statuses = Counter(status for _, status, _ in results)
    assert not [s for s in statuses if s >= 500], statuses
    for _, _status, body in results:
        assert isinstance(body, dict) and "success" in body, body
    return statuses


def audit_count(kind, row_id=None):
    rows = AuditRecord.objects.filter(kind=kind, addon="counters")
    if row_id is not None:
        rows = rows.filter(target__endswith=f":{row_id}")
    return rows.count()


def test_fifty_clients_patching_one_row(servers, counters):
    status, created = servers[0].request("POST", URL, counters, {"name": "shared"})
    assert status == 201, created
    row_id = created["data"]["id"]
    requests = [("PATCH", f"{URL}/{row_id}", {"value": i + 1}) for i in range(4 * CLIENTS)]
    results = hammer(servers, counters, requests)
    statuses = assert_no_server_errors(results)
    assert statuses == {200: len(requests)}, statuses
    final = servers[0].request("GET", f"{URL}/{row_id}", counters)[1]["data"]["value"]
    assert final in {body["data"]["value"] for _, _, body in results}
    assert audit_count("crud.update", row_id) == len(requests)


def test_fifty_clients_spread_over_many_rows_with_unique_races(servers, counters):
    """Creates (a fifth of them racing for the same unique codes), then updates and deletes
    of the created rows: every 2xx left its row and its audit event, every race lost is a
    409 naming the column."""
    creates = [
        ("POST", URL, {"name": f"row {i}", "value": i, "code": f"code-{i % (CLIENTS * 4 // 5)}"})
        for i in range(4 * CLIENTS)
    ]
    results = hammer(servers, counters, creates)
    statuses = assert_no_server_errors(results)
    created = [body["data"] for _, status, body in results if status == 201]
    conflicts = [body for _, status, body in results if status == 409]
    assert statuses == {201: CLIENTS * 4 // 5, 409: len(creates) - CLIENTS * 4 // 5}, statuses
    assert all(body["code"] == "conflict" and list(body["errors"]) == ["code"] for body in conflicts), (
        conflicts[:3]
    )
    assert audit_count("crud.create") == len(created)

    updates = [("PATCH", f"{URL}/{row['id']}", {"value": row["value"] + 1000}) for row in created]
    deletes = [("DELETE", f"{URL}/{row['id']}", None) for row in created[::4]]
    results = hammer(servers, counters, updates + deletes)
    statuses = assert_no_server_errors(results)
    deleted = {
        path.rsplit("/", 1)[1]
        for (method, path, _), status, _ in results
        if method == "DELETE" and status == 200
    }
    updated = {
        path.rsplit("/", 1)[1]
        for (method, path, _), status, _ in results
        if method == "PATCH" and status == 200
    }
    assert len(deleted) == len(deletes), statuses
    assert set(statuses) <= {200, 404}, statuses  # an update may lose the race to its row's delete
    assert audit_count("crud.update") == len(updated) and audit_count("crud.delete") == len(deleted)
    table = get_kernel().registry.resolve("counters.counters").model_class
    assert table.objects.count() == len(created) - len(deleted)
    for row in table.objects.all():
        assert row.value == (
            1000 + int(row.name.split()[1]) if str(row.id) in updated else int(row.name.split()[1])
        )


def test_sqlite_runs_in_wal_with_immediate_transactions(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings")
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.transaction_mode == "IMMEDIATE" and connection.settings_dict["OPTIONS"]["timeout"] >= 5
