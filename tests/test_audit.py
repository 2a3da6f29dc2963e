"""The audit pipe: schema, sinks, transactions, failures, reads, retention, OpenTelemetry."""

import json
import logging
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from metacore import telemetry
from metacore.audit.pipe import EVENT_KINDS, SCHEMA_VERSION, AuditEvent, AuditPipe, audit_context
from metacore.audit.sinks import DatabaseSink, LogSink, OpenTelemetrySink
from metacore.models import AuditRecord

pytestmark = pytest.mark.django_db


def test_event_schema():
    event = AuditPipe([]).record(
        "crud.create",
        actor=7,
        tenant=None,
        addon="shop",
        target="shop.orders:1",
        decision="allow",
        details={"fields": ["total"]},
    )
    data = event.as_dict()
    assert set(data) == {
        "id",
        "timestamp",
        "schema_version",
        "kind",
        "actor",
        "tenant",
        "addon",
        "target",
        "decision",
        "mode",
        "reason",
        "request_id",
        "trace_id",
        "span_id",
        "details",
    }
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["actor"] == "7" and data["tenant"] == "" and data["trace_id"] == ""
    assert {"capability.check", "crud.create", "addon.install", "enforcer.mode_changed"} <= set(EVENT_KINDS)


def test_log_sink_writes_one_json_line(caplog):
    with caplog.at_level(logging.INFO, logger="metacore.audit"):
        event = AuditPipe([LogSink()]).record("addon.install", addon="shop", decision="allow")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "metacore.audit"]
    assert json.loads(line) == event.as_dict()


def test_any_callable_is_a_sink_and_context_fills_defaults():
    seen = []
    pipe = AuditPipe([seen.append])
    with audit_context(request_id="req-1", actor="alice", tenant="org-1"):
        pipe.record("crud.update", addon="shop")
        pipe.record("crud.update", addon="shop", actor="bob")
    pipe.record("crud.update", addon="shop")
    assert [(e.request_id, e.actor, e.tenant) for e in seen] == [
        ("req-1", "alice", "org-1"),
        ("req-1", "bob", "org-1"),
        ("", "", ""),
    ]


def test_sinks_from_settings(settings):
    settings.METACORE = {"AUDIT_SINKS": ["metacore.audit.sinks.LogSink", "logging.getLogger", print]}
    pipe = AuditPipe.from_settings()
    assert (
        isinstance(pipe.sinks[0], LogSink) and pipe.sinks[1] is logging.getLogger and pipe.sinks[2] is print
    )


def test_failing_sink_is_counted_logged_and_harmless(caplog, otel):
    seen = []

    def broken(event):
        raise RuntimeError("disk full")

    pipe = AuditPipe([broken, seen.append])
    with caplog.at_level(logging.ERROR, logger="metacore.audit"):
        event = pipe.record("crud.delete", addon="shop")
    assert seen == [event]
    assert pipe.failures == 1 and pipe.failures_by_sink == {
        "test_failing_sink_is_counted_logged_and_harmless.<locals>.broken": 1
    }
    assert "failed for crud.delete" in caplog.text and "disk full" in caplog.text
    (point,) = otel.metric_points("metacore.audit.sink.failures")
    assert point.value == 1


def test_reads_are_dropped_unless_asked(settings):
    seen = []
    pipe = AuditPipe([seen.append])
    assert pipe.record("crud.read", addon="shop") is None and seen == []
    settings.METACORE = {"AUDIT_READS": True}
    assert pipe.record("crud.read", addon="shop") is not None and len(seen) == 1


# --- the database sink ------------------------------------------------------------------


def test_database_sink_row():
    event = AuditPipe([DatabaseSink()]).record(
        "crud.create",
        actor="7",
        addon="shop",
        target="shop.orders:1",
        decision="allow",
        details={"fields": ["total"]},
    )
    row = AuditRecord.objects.get()
    assert (
        str(row.event_id) == event.id and row.kind == "crud.create" and row.details == {"fields": ["total"]}
    )
    assert row.timestamp.isoformat() == event.timestamp


@pytest.mark.django_db(transaction=True)
def test_database_sink_shares_the_callers_transaction():
    pipe = AuditPipe([DatabaseSink()])
    with transaction.atomic():
        pipe.record("crud.create", addon="shop", decision="allow")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            pipe.record("crud.update", addon="shop", decision="allow")
            raise RuntimeError("write failed")
    assert list(AuditRecord.objects.values_list("kind", flat=True)) == ["crud.create"]


@pytest.mark.django_db(transaction=True)
def test_database_sink_failure_leaves_the_callers_transaction_usable():
    pipe = AuditPipe([DatabaseSink()])
    first = pipe.record("crud.create", addon="shop")
    with transaction.atomic():
        duplicate = AuditEvent(kind="crud.create", id=first.id)
        with pytest.raises(Exception):
            DatabaseSink()(duplicate)  # unique event_id: the insert fails inside its savepoint
        pipe.record("crud.update", addon="shop")  # the caller's transaction goes on
    assert AuditRecord.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_denial_survives_the_rollback_of_what_was_denied():
    pipe = AuditPipe([DatabaseSink()])
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            pipe.record("crud.create", addon="shop", decision="allow")
            pipe.record("capability.check", addon="shop", decision="deny", target="http:fetch https://x.io/")
            raise RuntimeError("the action failed")
    kinds = list(AuditRecord.objects.values_list("kind", flat=True))
    if connection.vendor == "sqlite":
        assert kinds == []  # single writer: the denial shares the caller's transaction (documented)
    else:
        assert kinds == ["capability.check"]


# --- OpenTelemetry sink ---------------------------------------------------------------


def test_opentelemetry_sink_emits_log_records_and_span_events(otel):
    pipe = AuditPipe([OpenTelemetrySink()])
    with telemetry.span("metacore.store.create", addon="shop") as span:
        event = pipe.record("crud.create", addon="shop", decision="allow", details={"id": "1"})
    (record,) = otel.log_records("metacore.audit.crud.create")
    assert json.loads(record.body)["id"] == event.id
    assert record.attributes["metacore.audit.addon"] == "shop"
    assert record.span_id == span.get_span_context().span_id
    assert event.trace_id == format(span.get_span_context().trace_id, "032x")
    (finished,) = otel.spans("metacore.store.create")
    assert [e.name for e in finished.events] == ["metacore.audit.crud.create"]


def test_telemetry_off_costs_nothing_and_records_nothing():
    t = telemetry.get_telemetry()
    assert t.enabled is False
    with telemetry.span("x", addon="a") as span:
        assert span is None
    telemetry.count_request(addon="a", model="m", action="list", status=200)
    assert telemetry.current_ids() == ("", "")


# --- retention ------------------------------------------------------------------------


def test_prune_deletes_only_old_records(capsys):
    pipe = AuditPipe([DatabaseSink()])
    now = timezone.now()
    for days, kind in ((40, "crud.create"), (40, "hub.connect"), (10, "crud.create"), (0, "crud.update")):
        pipe.record(kind, addon="shop").timestamp  # noqa: B018
        AuditRecord.objects.filter(pk=AuditRecord.objects.latest("id").pk).update(
            timestamp=now - timedelta(days=days)
        )
    call_command("metacore_audit_prune", "--older-than", "30", "--dry-run")
    assert "2 audit records" in capsys.readouterr().out and AuditRecord.objects.count() == 4
    call_command("metacore_audit_prune", "--older-than", "30", "--kind", "hub.connect")
    assert "deleted 1" in capsys.readouterr().out
    call_command("metacore_audit_prune", "--older-than", "5", "--batch-size", "1")
    assert "deleted 2" in capsys.readouterr().out
    assert list(AuditRecord.objects.values_list("kind", flat=True)) == ["crud.update"]


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "--older-than"),
        (["--older-than", "-1"], "0 or more"),
        (["--older-than", "x"], "invalid int"),
    ],
)
def test_prune_rejects_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("metacore_audit_prune", *args)


def test_in_a_test_transaction_denials_roll_back_with_the_test():
    """No autonomous write inside `denials_in_test_transaction` (conftest installs it around
    tests wrapped in a transaction): the rows vanish with the test."""
    pipe = AuditPipe([DatabaseSink()])
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            pipe.record("capability.check", addon="shop", decision="deny")
            raise RuntimeError("the action failed")
    assert not AuditRecord.objects.exists()


def test_extra_fields_go_to_details():
    event = AuditPipe([]).record("sandbox.call", addon="shop", function="Run", details={"ms": 3})
    assert event.details == {"function": "Run", "ms": 3}
