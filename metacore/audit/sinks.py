"""Built-in audit sinks. Any other callable taking an `AuditEvent` is a sink too."""

import json
import logging
from typing import TYPE_CHECKING

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import InsertQuery
from opentelemetry import trace

from metacore import telemetry
from metacore.audit.pipe import AuditEvent

if TYPE_CHECKING:
    from metacore.models import AuditRecord


class LogSink:
    """One JSON line per event on the `metacore.audit` logger (INFO)."""

    logger = logging.getLogger("metacore.audit")

    def __call__(self, event: AuditEvent) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(json.dumps(event.as_dict(), default=str, sort_keys=True))


def _transaction_state(conn: BaseDatabaseWrapper) -> tuple[bool, bool]:
    """(inside an atomic block of the application, inside a Django TestCase's test transaction)."""
    from_testcase = [getattr(block, "_from_testcase", False) for block in conn.atomic_blocks]
    return not all(from_testcase), any(from_testcase)


class DatabaseSink:
    """An `AuditRecord` row.

    Written on the caller's connection: inside a transaction it commits or rolls back with
    the audited write (in a savepoint, so a failed insert leaves the caller's transaction
    usable). One exception: a denial (`deny`/`would-deny`, not `crud.*`) recorded inside a
    transaction is written on a separate autocommit connection, so rolling back the
    operation that was denied does not erase the record of the denial. SQLite has a single
    writer, so there it stays in the caller's transaction; so it does inside a Django
    TestCase, whose rollback must leave no rows behind for the next test.
    """

    def __call__(self, event: AuditEvent) -> None:
        from metacore.models import AuditRecord

        data = event.as_dict()
        record = AuditRecord(event_id=data.pop("id"), **data)
        using = router.db_for_write(AuditRecord)
        conn = connections[using]
        in_transaction, in_test_case = _transaction_state(conn)
        if not in_transaction:
            record.save(using=using, force_insert=True)
        elif self._survives_rollback(event) and conn.vendor != "sqlite" and not in_test_case:
            self._write_autonomous(record, using)
        else:
            with transaction.atomic(using=using):
                record.save(using=using, force_insert=True)

    @staticmethod
    def _survives_rollback(event: AuditEvent) -> bool:
        return event.decision in ("deny", "would-deny") and not event.kind.startswith("crud.")

    @staticmethod
    def _write_autonomous(record: "AuditRecord", using: str) -> None:
        """Insert on a fresh autocommit connection, closed at once (denials inside
        transactions are rare; a kept connection would outlive requests and tests)."""
        from metacore.models import AuditRecord

        fields = [f for f in AuditRecord._meta.concrete_fields if not f.primary_key]
        query = InsertQuery(AuditRecord)
        query.insert_values(fields, [record])
        wrapper = connections.create_connection(using)
        try:
            with wrapper.cursor() as cursor:
                for sql, params in query.get_compiler(connection=wrapper).as_sql():
                    cursor.execute(sql, params)
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
