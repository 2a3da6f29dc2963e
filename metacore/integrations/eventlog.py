"""The event log: addon events persisted per organization (upstream `eventlog/`).

Every addon event (`event_emit`, an inbound webhook's event) is written after its
transaction committed, so a rolled-back action logs nothing. Queried by type (exact or
`prefix.*`) and time through `GET /api/metacore/events`; pruned with
`manage.py metacore_eventlog_prune --older-than DAYS`.
"""

from __future__ import annotations

from datetime import datetime

from metacore.events import AddonEvent, addon_event
from metacore.integrations.models import EventLogEntry


def connect_receivers() -> None:
    addon_event.connect(_record, weak=False, dispatch_uid="metacore.eventlog")


def _record(sender: object, event: AddonEvent, **kwargs: object) -> None:
    EventLogEntry.objects.create(
        tenant=str(event.tenant or ""),
        addon_key=event.addon,
        type=event.name,
        payload=event.payload if isinstance(event.payload, dict) else {"value": event.payload},
        at=datetime.fromisoformat(event.at),
    )


def query(
    tenant: object,
    *,
    type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[EventLogEntry]:
    entries = EventLogEntry.objects.filter(tenant=str(tenant))
    if type:
        entries = (
            entries.filter(type__startswith=type[:-1]) if type.endswith(".*") else entries.filter(type=type)
        )
    if since:
        entries = entries.filter(at__gte=since)
    if until:
        entries = entries.filter(at__lt=until)
    return list(entries[:limit])
