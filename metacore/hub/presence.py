"""Which sockets are open, in every process: `HubConnection` rows with an expiry.

A socket adds its row when it connects and removes it when it closes. Each process (each
event loop) runs one heartbeat that pushes the expiry of its own rows forward every third of
`HUB_PRESENCE_TTL_S`, so the rows of a process that died without closing its sockets stop
counting within that TTL (and are deleted by the next heartbeat of any process). Reads are
plain queries: `connections()` is what `HubPublisher.connected_users` and
`send_conditional` see.
"""

import asyncio
import datetime
import logging
import weakref
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.utils import timezone

from metacore.conf import metacore_settings

log = logging.getLogger("metacore.hub")

_heartbeats: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Heartbeat]" = (
    weakref.WeakKeyDictionary()
)  # event loop -> Heartbeat


@dataclass(frozen=True)
class ConnectionInfo:
    """What a conditional send's predicate sees of one open socket."""

    id: str
    user_id: str
    tenant: str  # "" when the user has no organization
    channel: str  # the `?channel=` it was opened with, or ""
    connected_at: datetime.datetime


def _ttl():
    return datetime.timedelta(seconds=float(metacore_settings.HUB_PRESENCE_TTL_S))


def add(info: ConnectionInfo):
    from metacore.hub.models import HubConnection

    HubConnection.objects.create(
        id=info.id,
        user_id=info.user_id,
        tenant=info.tenant,
        channel=info.channel[:200],
        connected_at=info.connected_at,
        expires_at=timezone.now() + _ttl(),
    )


def remove(connection_id: str):
    from metacore.hub.models import HubConnection

    HubConnection.objects.filter(pk=connection_id).delete()


def refresh(connection_ids):
    """Extend this process's rows and drop every process's expired ones."""
    from metacore.hub.models import HubConnection

    now = timezone.now()
    HubConnection.objects.filter(pk__in=list(connection_ids)).update(expires_at=now + _ttl())
    HubConnection.objects.filter(expires_at__lte=now).delete()


def connections(tenant=None) -> list[ConnectionInfo]:
    """Open sockets (of one organization when `tenant` is given), oldest first."""
    from metacore.hub.models import HubConnection

    rows = HubConnection.objects.filter(expires_at__gt=timezone.now())
    if tenant is not None:
        rows = rows.filter(tenant=str(tenant))
    return [
        ConnectionInfo(row.id, row.user_id, row.tenant, row.channel, row.connected_at)
        for row in rows.order_by("connected_at", "id")
    ]


def heartbeat() -> "Heartbeat":
    loop = asyncio.get_running_loop()
    beat = _heartbeats.get(loop)
    if beat is None:
        beat = _heartbeats[loop] = Heartbeat()
    return beat


class Heartbeat:
    """The running loop's open connections and the task that keeps their rows alive."""

    def __init__(self):
        self.ids = set()
        self._task = None

    async def add(self, info: ConnectionInfo):
        self.ids.add(info.id)
        await database_sync_to_async(add, thread_sensitive=False)(info)
        if self._task is None:
            self._task = asyncio.ensure_future(self._beat())

    async def remove(self, connection_id: str):
        self.ids.discard(connection_id)
        if not self.ids and self._task is not None:
            self._task.cancel()
            self._task = None
        await database_sync_to_async(remove, thread_sensitive=False)(connection_id)

    async def _beat(self):
        while True:
            await asyncio.sleep(float(metacore_settings.HUB_PRESENCE_TTL_S) / 3)
            try:
                await database_sync_to_async(refresh, thread_sensitive=False)(set(self.ids))
            except Exception:  # a database hiccup must not end presence for the process
                log.exception("hub: presence heartbeat failed")
