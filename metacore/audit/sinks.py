"""Built-in audit sinks. Any other callable taking an `AuditEvent` is a sink too."""

import functools
import json
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, DateTimeField, Field, JSONField, Model, TextField
from django.db.models.sql import InsertQuery
from opentelemetry import trace

from metacore import telemetry
from metacore.audit.pipe import AuditEvent, log

if TYPE_CHECKING:
    from metacore.models import AuditRecord


class LogSink:
    """One JSON line per event on the `metacore.audit` logger (INFO)."""

    logger = logging.getLogger("metacore.audit")

    def __call__(self, event: AuditEvent) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(json.dumps(event.as_dict(), default=str, sort_keys=True))


#: Whether a denial inside a transaction is written on a separate connection (DatabaseSink).
#: Off only where the outermost transaction is a test's, rolled back at its end with everything
#: the test wrote: `metacore.testing.denials_in_test_transaction`.
autonomous_denials: ContextVar[bool] = ContextVar("metacore_autonomous_denials", default=True)


class _Batch:
    """Records kept for one insert: those made at `depth` atomic blocks on the connection."""

    __slots__ = ("depth", "records")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.records: list[AuditEvent] = []


# Open batches per connection (a connection belongs to one thread: no lock needed).
_batches: "weakref.WeakKeyDictionary[BaseDatabaseWrapper, list[_Batch]]" = weakref.WeakKeyDictionary()


@contextmanager
def _batch(conn: BaseDatabaseWrapper) -> Iterator[_Batch]:
    stack = _batches.setdefault(conn, [])
    batch = _Batch(len(conn.atomic_blocks))
    stack.append(batch)
    try:
        yield batch
    finally:
        stack.remove(batch)


def _insert(events: list[AuditEvent], using: str, conn: BaseDatabaseWrapper | None = None) -> None:
    """One INSERT for all of them on `conn` (default: the `using` connection), without
    `bulk_create`'s bookkeeping (primary keys back, a transaction of its own); a single
    row's SQL is compiled once and its parameters converted without a model instance.
    SQLite splits past its bound-parameter limit."""
    if not events:
        return
    from metacore.models import AuditRecord

    conn = conn or connections[using]
    with conn.cursor() as cursor:
        if len(events) == 1:
            cursor.execute(_one_row_sql(conn.alias, conn.vendor), _row_params(events[0], conn))
            return
        fields = [field for _, field, _ in _columns()]
        records: list[Model] = [_record(event) for event in events]
        size = conn.ops.bulk_batch_size(fields, records) or len(records)
        for start in range(0, len(records), size):
            query = InsertQuery(AuditRecord)
            query.insert_values(fields, records[start : start + size])
            for sql, params in query.get_compiler(connection=conn).as_sql():
                cursor.execute(sql, params)


#: `AuditRecord` attributes named differently on the event.
_EVENT_ATTRIBUTE = {"event_id": "id"}


@functools.cache
def _columns() -> "tuple[tuple[str, Field[Any, Any], _Adapt | None], ...]":
    """Per inserted column: the event attribute it comes from, its field, and how its value
    becomes a query parameter: `_ADAPT`'s function for the field's type, else the field's
    own `get_db_prep_save`. The event's values are already what the fields hold (bounded
    strings, an ISO 8601 UTC timestamp, a JSON-ready dict), so Django's checks on the way
    can be skipped; they were half the cost of writing a record."""
    from metacore.models import AuditRecord

    return tuple(
        (_EVENT_ATTRIBUTE.get(f.attname, f.attname), f, _ADAPT.get(type(f)))
        for f in AuditRecord._meta.concrete_fields
        if not f.primary_key
    )


_Adapt = Callable[[Any, BaseDatabaseWrapper], object]
_ADAPT: dict[type["Field[Any, Any]"], _Adapt] = {
    CharField: lambda value, conn: value,
    TextField: lambda value, conn: value,
    DateTimeField: lambda value, conn: conn.ops.adapt_datetimefield_value(datetime.fromisoformat(value)),
    JSONField: lambda value, conn: conn.ops.adapt_json_value(value, None),
}


def _row_params(event: AuditEvent, conn: BaseDatabaseWrapper) -> list[Any]:
    return [
        adapt(getattr(event, attribute), conn)
        if adapt is not None
        else field.get_db_prep_save(getattr(event, attribute), connection=conn)
        for attribute, field, adapt in _columns()
    ]


def _record(event: AuditEvent) -> "AuditRecord":
    from metacore.models import AuditRecord

    return AuditRecord(
        **{
            field.attname: datetime.fromisoformat(value) if attribute == "timestamp" else value
            for attribute, field, _ in _columns()
            for value in (getattr(event, attribute),)
        }
    )


@functools.lru_cache(maxsize=8)
def _one_row_sql(alias: str, vendor: str) -> str:
    """`INSERT INTO metacore_auditrecord (...) VALUES (%s, ...)` as Django's compiler writes
    it for this database (its parameters are `_row_params`)."""
    from metacore.models import AuditRecord

    query = InsertQuery(AuditRecord)
    query.insert_values([field for _, field, _ in _columns()], [AuditRecord(details={})])
    ((sql, _params),) = query.get_compiler(using=alias).as_sql()
    return str(sql)


@contextmanager
def atomic_with_audit(using: str | None = None) -> Iterator[None]:
    """`transaction.atomic(using)` whose database audit records are inserted in one
    statement as the block ends without an exception, still inside it: they commit with
    its writes or not at all. An exception rolls the block back and discards them; so does
    a failed insert (a write whose audit row cannot be written does not commit). Records
    made in atomic blocks nested inside, and denials, are written as they happen."""
    using = using or router.db_for_write(_audit_record_model())
    with transaction.atomic(using=using), _batch(connections[using]) as batch:
        yield
        _insert(batch.records, using)


@contextmanager
def audit_batch(using: str | None = None) -> Iterator[None]:
    """Database audit records made directly in this block (no atomic block of its own) are
    inserted in one statement when it ends, exception or not: the writes they describe
    were made at this level and stand (or fall) with the caller's transaction, if any.
    For a sandbox call's imports and its `sandbox.call` record. A failed insert is logged
    and counted like any sink failure, and inside a transaction leaves it usable."""
    using = using or router.db_for_write(_audit_record_model())
    conn = connections[using]
    with _batch(conn) as batch:
        try:
            yield
        finally:
            if batch.records:
                try:
                    with transaction.atomic(using=using) if conn.in_atomic_block else nullcontext():
                        _insert(batch.records, using)
                except Exception:
                    telemetry.count_audit_sink_failure("DatabaseSink")
                    log.exception("audit sink DatabaseSink failed for %d records", len(batch.records))


def _audit_record_model() -> "type[AuditRecord]":
    from metacore.models import AuditRecord

    return AuditRecord


class DatabaseSink:
    """An `AuditRecord` row.

    Written on the caller's connection: inside a transaction it commits or rolls back with
    the audited write. Inside `atomic_with_audit` or `audit_batch` (the store's writes, a
    sandbox call) records are kept and inserted together in one statement as the block
    ends; elsewhere inside a transaction one is inserted in a savepoint, so a failed insert
    leaves the caller's transaction usable. One exception: a denial (`deny`/`would-deny`,
    not `crud.*`) recorded inside a transaction is written at once on a separate
    autocommit connection, so rolling back the operation that was denied does not erase
    the record of the denial. SQLite has a single writer, so there it stays in the
    caller's transaction; so it does while `autonomous_denials` is off (tests whose
    transaction is rolled back at their end, leaving no rows for the next).
    """

    def __call__(self, event: AuditEvent) -> None:
        using = router.db_for_write(_audit_record_model())
        conn = connections[using]
        survives_rollback = self._survives_rollback(event)
        stack = _batches.get(conn)
        if stack and not survives_rollback and stack[-1].depth == len(conn.atomic_blocks):
            stack[-1].records.append(event)
            return
        if not conn.in_atomic_block:
            _insert([event], using)
        elif survives_rollback and conn.vendor != "sqlite" and autonomous_denials.get():
            self._write_autonomous(event, using)
        else:
            with transaction.atomic(using=using):
                _insert([event], using)

    @staticmethod
    def _survives_rollback(event: AuditEvent) -> bool:
        return event.decision in ("deny", "would-deny") and not event.kind.startswith("crud.")

    @staticmethod
    def _write_autonomous(event: AuditEvent, using: str) -> None:
        """Insert on a fresh autocommit connection, closed at once (denials inside
        transactions are rare; a kept connection would outlive requests and tests)."""
        wrapper = connections.create_connection(using)
        try:
            _insert([event], using, wrapper)
        finally:
            wrapper.close()


class OpenTelemetrySink:
    """An OpenTelemetry log record per event (event name `metacore.audit.<kind>`, correlated
    with the current span), plus an event on the current span when one is recording."""

    def __call__(self, event: AuditEvent) -> None:
        attributes = {
            f"metacore.audit.{name}": value
            for name, value in event.as_dict().items()
            if name not in ("details", "trace_id", "span_id") and value not in ("", None)
        }
        if event.details:
            attributes["metacore.audit.details"] = json.dumps(event.details, default=str, sort_keys=True)
        telemetry.emit_log(
            json.dumps(event.as_dict(), default=str, sort_keys=True),
            event_name=f"metacore.audit.{event.kind}",
            attributes=attributes,
            severity_text="WARN" if event.decision in ("deny", "would-deny") else "INFO",
        )
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(f"metacore.audit.{event.kind}", attributes)
