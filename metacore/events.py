"""In-process event bus between the subsystems, on Django signals.

Producers never call consumers directly: the store publishes `data_changed` after commit,
the sandbox publishes `addon_event`, the installer `addon_changed`. The hub and the audit
pipe connect receivers. Receivers must not raise (a failing receiver is logged by
`send_robust`), so a broken consumer never fails a committed write.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger("metacore.events")

data_changed = Signal()  # kwargs: event=DataEvent
addon_event = Signal()  # kwargs: event=AddonEvent
addon_changed = Signal()  # kwargs: event=LifecycleEvent


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class DataEvent:
    """`<addon>.<model>.<created|updated|deleted>` for one row."""

    addon: str
    model: str  # model key
    table: str  # logical table name
    action: str  # created | updated | deleted
    id: str
    tenant: str | None
    actor_id: str | None
    fields: tuple[str, ...] = ()  # names of changed keys (never values)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: str = field(default_factory=_now)
    shared: bool = False  # a row of a table every organization sees (not org-scoped)

    @property
    def name(self) -> str:
        return f"{self.addon}.{self.model}.{self.action}"

    @property
    def audience(self) -> str | None:
        """The organization whose subscribers get the event; None: every organization's
        (a shared table's row, whoever wrote it)."""
        return None if self.shared else self.tenant


@dataclass(frozen=True)
class AddonEvent:
    """An event an addon emitted with `event_emit`."""

    addon: str
    name: str
    tenant: str | None
    payload: dict[str, Any]
    at: str = field(default_factory=_now)


@dataclass(frozen=True)
class LifecycleEvent:
    """install / upgrade / uninstall / enable / disable of an addon."""

    addon: str
    operation: str
    version: str
    at: str = field(default_factory=_now)


Event = DataEvent | AddonEvent | LifecycleEvent


def _send(signal: Signal, event: Event) -> None:
    for receiver, result in signal.send_robust(sender=type(event), event=event):
        if isinstance(result, Exception):
            log.error("event receiver %r failed on %r: %s", receiver, event, result)


def publish_on_commit(signal: Signal, event: Event, using: str | None = None) -> None:
    """Deliver `event` once the current transaction commits (at once when there is none);
    a rolled-back transaction delivers nothing."""
    transaction.on_commit(lambda: _send(signal, event), using=using)
