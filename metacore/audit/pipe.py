"""The audit pipe: one event schema, fanned out to the sinks in METACORE['AUDIT_SINKS'].

A sink is any callable taking an `AuditEvent` (classes are instantiated once). A failing
sink never fails the caller: the failure is counted (`AuditPipe.failures`, per sink in
`failures_by_sink`, and the `metacore.audit.sink.failures` metric) and logged.
`crud.read` events are dropped unless `METACORE['AUDIT_READS']` is on (reads are the volume).
No event is lost to its own size: text fields longer than the schema allows (`LIMITS`) and
long strings in `details` are cut, end with `TRUNCATED`, and the original lengths are kept
in `details["truncated"]`.

The schema (version `SCHEMA_VERSION`) is documented in docs/audit.md.
"""

import contextvars
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any

from django.utils.module_loading import import_string

from metacore import telemetry

log = logging.getLogger("metacore.audit")
SCHEMA_VERSION = 1

EVENT_KINDS = (
    "capability.check",
    "permission.check",
    "crud.create",
    "crud.read",
    "crud.update",
    "crud.delete",
    "addon.install",
    "addon.upgrade",
    "addon.uninstall",
    "addon.enable",
    "addon.disable",
    "enforcer.mode_changed",
    "sandbox.call",
    "sandbox.import",
    "hub.connect",
    "hub.subscribe",
    "action.dispatch",
    "webhook.delivery",
    "schedule.run",
    "tool.execute",
)
_TEXT_FIELDS = (
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
)
_context: contextvars.ContextVar[dict[str, object]] = contextvars.ContextVar(
    "metacore_audit_context",
    default={},  # noqa: B039 (never mutated: binding sets a new dict)
)
_FIELDS = frozenset(_TEXT_FIELDS) | {"id", "timestamp"}
# Longest value of each text field (the database sink's column sizes; `reason` is unbounded).
LIMITS = {
    "actor": 150,
    "tenant": 64,
    "addon": 64,
    "target": 300,
    "decision": 12,
    "mode": 8,
    "reason": 4000,
    "request_id": 64,
    "trace_id": 32,
    "span_id": 16,
}
DETAIL_LIMIT = 2000  # longest string kept inside `details`
TRUNCATED = "…[truncated]"


def _cut(value: str, limit: int) -> str:
    return value[: max(limit - len(TRUNCATED), 0)] + TRUNCATED


def _bounded_details(value: object, lengths: dict[str, int], path: str) -> object:
    """`details` with every long string cut (recording the original lengths by path)."""
    if isinstance(value, str) and len(value) > DETAIL_LIMIT:
        lengths[path] = len(value)
        return _cut(value, DETAIL_LIMIT)
    if isinstance(value, dict):
        return {k: _bounded_details(v, lengths, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_bounded_details(v, lengths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


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
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The fields by name; `details` is shared, not copied (every sink reads it, none
        changes it, and a deep copy per sink was most of the pipe's cost)."""
        return {name: getattr(self, name) for name in _EVENT_FIELDS}


_EVENT_FIELDS = tuple(f.name for f in dataclass_fields(AuditEvent))


@contextmanager
def audit_context(**fields: object) -> Iterator[None]:
    """Defaults for events recorded inside the block (e.g. `request_id`, `actor`, `tenant`
    set once by a view or consumer); explicit fields of `record()` win."""
    values = {k: v for k, v in fields.items() if v not in (None, "")}
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)


def _sink_name(sink: "Sink") -> str:
    """`LogSink` for an instance, the function's name for a function."""
    return getattr(sink, "__qualname__", None) or type(sink).__qualname__


#: A sink: any callable taking an event (what it returns is ignored).
Sink = Callable[[AuditEvent], object]


class AuditPipe:
    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = list(sinks)
        self.failures = 0
        self.failures_by_sink: dict[str, int] = {}

    @classmethod
    def from_settings(cls) -> "AuditPipe":
        from metacore.conf import metacore_settings

        sinks: list[Sink] = []
        for entry in metacore_settings.AUDIT_SINKS:
            obj = import_string(entry) if isinstance(entry, str) else entry
            sinks.append(obj() if isinstance(obj, type) else obj)
        return cls(sinks)

    def record(
        self, kind: str, **fields: Any
    ) -> AuditEvent | None:  # fields: schema fields and free-form details
        """Build the event and hand it to every sink; returns it (None when dropped).
        Keyword arguments that are not schema fields go into `details`."""
        from metacore.conf import metacore_settings

        if kind == "crud.read" and not metacore_settings.AUDIT_READS:
            return None
        for name, value in _context.get().items():
            if not fields.get(name):
                fields[name] = value
        if not fields.get("trace_id"):
            fields["trace_id"], span_id = telemetry.current_ids()
            fields.setdefault("span_id", span_id)
        for name in _TEXT_FIELDS:
            value = fields.get(name)
            if value is not None and not isinstance(value, str):
                fields[name] = str(value)
        details = dict(fields.pop("details", None) or {})
        extra = {name: fields.pop(name) for name in list(fields) if name not in _FIELDS}
        lengths: dict[str, int] = {}
        for name, limit in LIMITS.items():
            value = fields.get(name)
            if isinstance(value, str) and len(value) > limit:
                lengths[name] = len(value)
                fields[name] = _cut(value, limit)
        details = {k: _bounded_details(v, lengths, f"details.{k}") for k, v in {**extra, **details}.items()}
        if lengths:
            details["truncated"] = lengths
        event = AuditEvent(
            kind=kind,
            details=details,
            **{k: ("" if v is None else v) for k, v in fields.items()},  # type: ignore[arg-type]  # only str fields are left (_FIELDS)
        )
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                name = _sink_name(sink)
                self.failures += 1
                self.failures_by_sink[name] = self.failures_by_sink.get(name, 0) + 1
                telemetry.count_audit_sink_failure(name)
                log.exception("audit sink %s failed for %s %s", name, event.kind, event.id)
        return event
