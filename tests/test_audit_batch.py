"""Audit records written in one statement per transaction, without losing any: a committed
write always has its row, a rolled-back one never does, a denial survives the rollback."""

import json
import shutil
from pathlib import Path

import pytest
import sandbox_guests as guests
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from metacore.audit.pipe import AuditEvent, AuditPipe
from metacore.audit.sinks import DatabaseSink, atomic_with_audit, audit_batch
from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.models import AuditRecord

pytestmark = pytest.mark.django_db(transaction=True)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"


def audit_inserts(captured):
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('INSERT INTO "metacore_auditrecord"')
    ]


def test_records_of_a_committed_block_are_inserted_together_before_the_commit():
    pipe = AuditPipe([DatabaseSink()])
    with CaptureQueriesContext(connection) as captured:
        with atomic_with_audit():
            for n in range(3):
                pipe.record("crud.create", addon="shop", target=f"shop.orders:{n}", decision="allow")
            assert not AuditRecord.objects.exists()  # kept until the block ends...
        statements = [q["sql"].split()[0] for q in captured.captured_queries]
    assert len(audit_inserts(captured)) == 1 and "SAVEPOINT" not in statements  # ...then one INSERT
    assert sorted(AuditRecord.objects.values_list("target", flat=True)) == [
        f"shop.orders:{n}" for n in range(3)
    ]


def test_the_documented_wrapping_of_a_services_transaction():
    """docs/audit.md, "When rows are written"."""
    user = User.objects.create(username="ann")
    with CaptureQueriesContext(connection) as captured:
        with atomic_with_audit():  # transaction.atomic() whose audit records commit with it, in one INSERT
            user.save()
            get_kernel().audit.record("crud.update", target=f"auth.user:{user.pk}", decision="allow")
    assert len(audit_inserts(captured)) == 1
    assert AuditRecord.objects.get(kind="crud.update").target == f"auth.user:{user.pk}"


def test_a_rolled_back_block_leaves_no_records_but_its_denials():
    pipe = AuditPipe([DatabaseSink()])
    with pytest.raises(RuntimeError), atomic_with_audit():
        pipe.record("crud.create", addon="shop", decision="allow")
        pipe.record("capability.check", addon="shop", decision="deny", target="http:fetch https://x.io/")
        raise RuntimeError("the write failed")
    kinds = list(AuditRecord.objects.values_list("kind", flat=True))
    # SQLite has a single writer: there the denial shares the caller's transaction (documented).
    assert kinds == ([] if connection.vendor == "sqlite" else ["capability.check"])


def test_records_of_a_nested_block_that_rolls_back_go_with_it():
    pipe = AuditPipe([DatabaseSink()])
    with atomic_with_audit():
        pipe.record("crud.create", addon="shop", target="kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            pipe.record("crud.create", addon="shop", target="rolled back")
            raise RuntimeError("inner write failed")
    assert list(AuditRecord.objects.values_list("target", flat=True)) == ["kept"]


def test_a_write_whose_records_cannot_be_inserted_does_not_commit():
    pipe = AuditPipe([DatabaseSink()])
    first = pipe.record("crud.create", addon="shop")
    with pytest.raises(Exception), atomic_with_audit():
        pipe.record("crud.update", addon="shop", target="the write")
        DatabaseSink()(AuditEvent(kind="crud.update", id=first.id))  # a duplicate event id
    assert list(AuditRecord.objects.values_list("target", flat=True)) == [""]


def test_outside_a_transaction_a_batch_is_written_even_when_the_block_raises():
    pipe = AuditPipe([DatabaseSink()])
    with pytest.raises(RuntimeError), audit_batch():
        pipe.record("sandbox.import", addon="shop", target="a")
        pipe.record("sandbox.import", addon="shop", target="b")
        raise RuntimeError("the call trapped")
    assert sorted(AuditRecord.objects.values_list("target", flat=True)) == ["a", "b"]


def test_a_batch_that_cannot_be_inserted_leaves_the_callers_transaction_usable(caplog):
    pipe = AuditPipe([DatabaseSink()])
    first = pipe.record("crud.create", addon="shop")
    with transaction.atomic():
        with audit_batch():
            DatabaseSink()(AuditEvent(kind="sandbox.call", id=first.id))
        pipe.record("crud.update", addon="shop")
    assert AuditRecord.objects.count() == 2
    assert "audit sink DatabaseSink failed for 1 records" in caplog.text


@pytest.fixture
def several(tmp_path):
    """An addon whose `several` export calls three audited imports (env_get twice, a read)."""
    body = """
  (data (i32.const 512) "support_email")
  (data (i32.const 600) "SELECT count(*) AS n FROM tickets[]")
  (func (export "several") (param i32 i32) (result i64)
    (drop (call $env_get (i32.const 512) (i32.const 13)))
    (drop (call $env_get (i32.const 512) (i32.const 13)))
    (drop (call $db_query (i32.const 600) (i32.const 33) (i32.const 633) (i32.const 2)))
    (i64.const 0))
"""
    target = tmp_path / "several"
    shutil.copytree(EXAMPLE, target)
    (target / "backend" / "helpdesk.wasm").write_bytes(guests.module(body, imports=("env_get", "db_query")))
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(key="several", name="Several", hooks={}, actions={})
    manifest["backend"]["exports"] = ["several"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    yield
    get_kernel().installer.uninstall("several", drop_data=True)


TENANT = CallContext(tenant="00000000-0000-0000-0000-000000000001")


def test_a_sandbox_call_writes_its_imports_records_in_one_statement(several):
    sandbox = get_kernel().sandbox
    with CaptureQueriesContext(connection) as captured:
        sandbox.call("several", "several", {}, TENANT)
    assert len(audit_inserts(captured)) == 1
    records = list(AuditRecord.objects.filter(addon="several", kind__startswith="sandbox.").order_by("id"))
    assert [r.kind for r in records] == ["sandbox.import"] * 3 + ["sandbox.call"]
    assert [r.details["import"] for r in records[:3]] == ["env_get", "env_get", "db_query"]


def test_a_sandbox_call_inside_a_rolled_back_transaction_leaves_no_records(several):
    with pytest.raises(RuntimeError), transaction.atomic():
        get_kernel().sandbox.call("several", "several", {}, TENANT)
        raise RuntimeError("the caller's write failed")
    assert not AuditRecord.objects.filter(addon="several", kind__startswith="sandbox.").exists()
