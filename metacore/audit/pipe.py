"""The audit pipe: one event schema, fanned out to the sinks in METACORE['AUDIT_SINKS'].

A sink is any callable taking an `AuditEvent` (classes are instantiated once). A failing
sink never fails the caller: the failure is counted and logged.
"""
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from django.utils.module_loading import import_string

log = logging.getLogger("metacore.audit")
SCHEMA_VERSION = 1


@dataclass
class AuditEvent:
    kind: str
    actor: str = ""
    tenant: str = ""
    addon: str = ""
    target: str = ""
    decision: str = ""  # allow | deny | would-deny
    mode: str = ""
    reason: str = ""
    request_id: str = ""
    trace_id: str = ""
    span_id: str = ""
    details: dict = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    schema_version: int = SCHEMA_VERSION

    def as_dict(self):
        return asdict(self)


class AuditPipe:
    def __init__(self, sinks):
        self.sinks = list(sinks)
        self.failures = 0

    @classmethod
    def from_settings(cls):
        from metacore.conf import metacore_settings

        sinks = []
        for entry in metacore_settings.AUDIT_SINKS:
            obj = import_string(entry) if isinstance(entry, str) else entry
            sinks.append(obj() if isinstance(obj, type) else obj)
        return cls(sinks)

    def record(self, kind, **fields):
        event = AuditEvent(kind=kind, **{k: ("" if v is None else v) for k, v in fields.items()})
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                self.failures += 1
                log.exception("audit sink %r failed for %s", sink, event.kind)
        return event
