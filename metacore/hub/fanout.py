"""Per-process fanout: one channel-layer channel per process, local delivery to sockets.

Channels' own pattern (every consumer joins the groups itself) makes a `group_send` cost one
channel-layer message per socket: with channels_redis, Redis carries every frame once per
client. Here each process (each event loop) holds one `LocalFanout`: a single layer channel
that joins a group when the first local socket needs it and leaves when the last one goes.
The publisher's `group_send` then reaches each process once, and the process hands the one
message to its sockets in memory (`HubConsumer.deliver`), so Redis traffic grows with the
number of processes and groups, not with clients. Messages carry their group name
(`message["group"]`) since a layer does not say which group a message came through.

The fanout also holds the sockets' `Principal`s (one per user and credential): the
recheck state shared by every socket opened with the same token or session.
"""

import asyncio
import logging
import time
import weakref
from typing import Any

from channels.db import database_sync_to_async

from metacore import telemetry

log = logging.getLogger("metacore.hub")

REFRESH_S = 3600.0  # re-join every group this often: layers expire memberships (default after a day)

_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LocalFanout]]" = (
    weakref.WeakKeyDictionary()
)  # event loop -> {id(layer): LocalFanout}


def fanout_for(layer) -> "LocalFanout":
    """The running loop's fanout over `layer` (created on first use)."""
    loop = asyncio.get_running_loop()
    per_loop = _fanouts.setdefault(loop, {})
    fanout = per_loop.get(id(layer))
    if fanout is None or fanout.layer is not layer:
        fanout = per_loop[id(layer)] = LocalFanout(layer)
    return fanout


class LocalFanout:
    def __init__(self, layer):
        self.layer = layer
        self.members = {}  # group -> {consumer: None} (insertion-ordered set)
        self.principals = {}  # Principal.key -> Principal
        self.channel = None
        self._tasks = ()
        self._starting = None

    # -- membership ------------------------------------------------------------------------------
    async def join(self, group, consumer):
        members = self.members.get(group)
        if members is None:
            members = self.members[group] = {}
            members[consumer] = None
            if self.layer is not None:
                await self._start()
                await self.layer.group_add(group, self.channel)
        else:
            members[consumer] = None

    async def leave(self, group, consumer):
        members = self.members.get(group)
        if members is None or consumer not in members:
            return
        del members[consumer]
        if not members:
            del self.members[group]
            channel = self.channel
            if not self.members:
                self._stop()
            if channel is not None and self.layer is not None:
                await self.layer.group_discard(group, channel)

    async def _start(self):
        if self.channel is not None:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._starting)

    async def _open(self):
        channel = await self.layer.new_channel()
        self.channel = channel
        self._tasks = (
            asyncio.ensure_future(self._receive_loop(channel)),
            asyncio.ensure_future(self._refresh_loop()),
        )

    def _stop(self):
        for task in self._tasks:
            task.cancel()
        self._tasks, self.channel, self._starting = (), None, None

    async def _receive_loop(self, channel):
        while True:
            message = await self.layer.receive(channel)
            try:
                self.dispatch(message)
            except Exception:  # one bad message or socket must not stop this process's fanout
                log.exception("hub: fanout of %s failed", message.get("type"))

    async def _refresh_loop(self):
        while True:
            await asyncio.sleep(min(REFRESH_S, getattr(self.layer, "group_expiry", 86400) / 2))
            for group in list(self.members):
                await self.layer.group_add(group, self.channel)

    # -- delivery ------------------------------------------------------------------------------
    def dispatch(self, message):
        members = self.members.get(message.get("group"))
        if not members:
            return
        telemetry.record_hub_fanout(len(members), kind=message["type"])
        for consumer in list(members):
            consumer.deliver(message)

    # -- principals ------------------------------------------------------------------------------
    def principal(self, key, factory) -> "Principal":
        principal = self.principals.get(key)
        if principal is None:
            principal = self.principals[key] = factory()
        return principal

    def release(self, principal, consumer):
        principal.consumers.pop(consumer, None)
        if not principal.consumers and self.principals.get(principal.key) is principal:
            del self.principals[principal.key]


class Principal:
    """Who a set of sockets are. An event for them is delivered on a verdict younger than
    `ttl` seconds; past half of that an event also starts a fresh check in the background (so
    steady traffic never waits); past `ttl` the event waits for a check. A socket that no
    longer passes is closed and never sees the events that waited.

    `verify` is synchronous (run in a thread): it returns a `Verdict` from the database's
    current state (credential still valid, user active, tenant, addon permissions)."""

    def __init__(self, key, verify, ttl):
        self.key = key
        self._verify = verify
        self.ttl = ttl
        self.verdict = None
        self.checked_at = float("-inf")
        self.consumers = {}  # consumer -> None
        self.held = []  # (consumer, message) waiting for a check
        self._checking = None

    def fresh(self) -> bool:
        if self.verdict is None:
            return False
        age = time.monotonic() - self.checked_at
        if age >= self.ttl / 2 and self._checking is None and age < self.ttl:
            self._checking = asyncio.ensure_future(self._run_check())
        return age < self.ttl

    def expire(self):
        self.checked_at = float("-inf")

    async def check(self):
        """Run (or join) a check now; returns the verdict."""
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._run_check())
        return await asyncio.shield(self._checking)

    def hold(self, consumer, message):
        self.held.append((consumer, message))
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._run_check())

    async def _run_check(self):
        started = time.monotonic()
        try:
            # Not thread-sensitive: a check must not queue behind the process's other sync work.
            verdict = await database_sync_to_async(self._verify, thread_sensitive=False)()
        except Exception:
            log.exception("hub: recheck failed; closing the sockets of %s", self.key[0])
            verdict = Verdict.failed(4401, "credentials could not be re-checked")
        self.verdict, self.checked_at = verdict, started
        self._checking = None
        held, self.held = self.held, []
        for consumer in list(self.consumers):
            consumer.rechecked(verdict)
        for consumer, message in held:
            consumer.deliver(message)
        return verdict


class Verdict:
    """Result of a recheck: `code` 0 when the credentials still pass."""

    __slots__ = ("code", "reason", "user", "tenant", "superuser", "readable")

    def __init__(
        self,
        code: int = 0,
        reason: str | None = "",
        user: Any = None,
        tenant: str | None = None,
        superuser: bool = False,
        readable: frozenset[str] = frozenset(),
    ) -> None:
        self.code, self.reason, self.user, self.tenant = code, reason, user, tenant
        self.superuser, self.readable = superuser, readable

    @classmethod
    def failed(cls, code: int, reason: str | None) -> "Verdict":
        return cls(code=code, reason=reason)

    def may(self, codename) -> bool:
        return self.code == 0 and (self.superuser or codename in self.readable)
