"""A list page's total, kept per SQLite connection while the database is unchanged
(metacore.store.compiled.Statement.count): every write is counted on the next page, whoever
makes it: the same connection, another connection of the same process, another server
process; a rolled-back write or savepoint and a schema change too. Outside a transaction only
(`transaction=True` tests): inside one nothing is kept."""

import threading
import uuid

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from metacore.kernel import get_kernel
from tests.livekit import Web
from tests.test_access_cache import NOTES, InProcess, desk  # noqa: F401  # the fixture

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL counts every page")


def total(status_and_body):
    status, body = status_and_body
    assert status == 200, body
    return body["meta"]["total"]


def assert_kept(api, expected):
    """The page counted (its first read compiles the statements, the second counts and keeps
    the total), then answered without a COUNT."""
    for _ in range(2):
        assert total(api.get(NOTES)) == expected
    with CaptureQueriesContext(connection) as kept:
        assert total(api.get(NOTES)) == expected
    assert not any("COUNT(*)" in query["sql"] for query in kept.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_database_is_not_counted_twice_and_every_write_is_seen(desk):  # noqa: F811
    get_kernel().permissions.grant(desk["user"], ["desk.notes.create", "desk.notes.delete"])
    api = InProcess(desk["token"])
    assert_kept(api, 1)

    created = api.client.post(NOTES, {"title": "more"}, format="json").json()["data"]
    assert total(api.get(NOTES)) == 2
    assert api.client.delete(f"{NOTES}/{created['id']}").status_code in (200, 204)
    assert total(api.get(NOTES)) == 1
    model = get_kernel().registry.resolve("desk.notes").model_class
    model.objects.filter(organization_id=desk["first"]).delete()  # the ORM, same connection
    assert total(api.get(NOTES)) == 0


@pytest.mark.django_db(transaction=True)
def test_a_commit_on_another_connection_is_counted(desk):  # noqa: F811
    """Another thread's connection (as another process's) commits: `PRAGMA data_version`."""
    api = InProcess(desk["token"])
    assert_kept(api, 1)

    model = get_kernel().registry.resolve("desk.notes").model_class

    def write():
        model.objects.create(id=uuid.uuid4(), organization_id=desk["first"], title="more")
        connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join()
    assert total(api.get(NOTES)) == 2


@pytest.mark.django_db(transaction=True)
def test_a_write_in_one_server_process_is_counted_by_another(desk):  # noqa: F811
    get_kernel().permissions.grant(desk["user"], ["desk.notes.create"])
    reader, writer = Web.start(2, extra_args=("WEB_CONCURRENCY=1",))
    try:
        for _ in range(2):
            assert total(reader.request("GET", NOTES, desk["token"])) == 1
        assert writer.request("POST", NOTES, desk["token"], {"title": "more"})[0] == 201
        assert total(reader.request("GET", NOTES, desk["token"])) == 2
        model = get_kernel().registry.resolve("desk.notes").model_class
        model.objects.filter(organization_id=desk["first"], title="more").delete()  # this process
        assert total(reader.request("GET", NOTES, desk["token"])) == 1
    finally:
        reader.terminate()
        writer.terminate()


@pytest.mark.django_db
def test_a_rolled_back_write_or_savepoint_is_not_counted(desk):  # noqa: F811
    """Inside a transaction (this test's) a page is counted every time: a rollback moves none
    of the counters."""
    api = InProcess(desk["token"])
    model = get_kernel().registry.resolve("desk.notes").model_class
    for _ in range(2):
        assert total(api.get(NOTES)) == 1

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        model.objects.create(id=uuid.uuid4(), organization_id=desk["first"], title="undone")
        assert total(api.get(NOTES)) == 2
        raise Undo
    assert total(api.get(NOTES)) == 1
    savepoint = transaction.savepoint()
    model.objects.create(id=uuid.uuid4(), organization_id=desk["first"], title="undone")
    assert total(api.get(NOTES)) == 2
    transaction.savepoint_rollback(savepoint)
    assert total(api.get(NOTES)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_schema_change_alone_is_counted(desk):  # noqa: F811
    """The table emptied by DDL on the same connection (no row written): `schema_version`."""
    api = InProcess(desk["token"])
    assert_kept(api, 1)
    table = get_kernel().registry.resolve("desk.notes").model_class._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "emptied" AS SELECT * FROM "{table}" WHERE 0')
        cursor.execute(f'DROP TABLE "{table}"')
        cursor.execute(f'ALTER TABLE "emptied" RENAME TO "{table}"')
    assert total(api.get(NOTES)) == 0
