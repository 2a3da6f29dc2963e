"""Built-in audit sinks."""
import json
import logging

from metacore.audit.pipe import AuditEvent


class LogSink:
    """One JSON line per event on the `metacore.audit` logger."""

    logger = logging.getLogger("metacore.audit")

    def __call__(self, event: AuditEvent):
        self.logger.info(json.dumps(event.as_dict(), default=str, sort_keys=True))


class DatabaseSink:
    """An `AuditRecord` row, written on the caller's connection: inside a transaction it
    commits or rolls back with the audited write."""

    def __call__(self, event: AuditEvent):
        from metacore.models import AuditRecord

        data = event.as_dict()
        AuditRecord.objects.create(
            event_id=data.pop("id"),
            **{k: v for k, v in data.items()},
        )
