"""Bridge from metacore's event bus to the Channels layer.

The store, the sandbox and the installer publish committed events as Django signals
(`metacore.events`); the receivers below turn each into one JSON frame, serialised once, and
`group_send` it to the tenant-scoped groups the processes' fanouts joined for their sockets
(`metacore.hub.groups`, `metacore.hub.fanout`): one channel-layer message per process.
Frames carry identity and changed key names, never row values. Receivers are connected in
`MetacoreConfig.ready()`, so every process that writes also publishes; with a shared channel
layer (channels_redis) a write in one process reaches sockets held by any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, InMemoryChannelLayer

from metacore import events, telemetry
from metacore.errors import NotFound
from metacore.hub import groups, presence

if TYPE_CHECKING:
    from metacore.schema.registry import ModelRegistry

log = logging.getLogger("metacore.hub")

DATA_EVENT = "DATA_EVENT"
ADDON_EVENT = "ADDON_EVENT"
NOTIFICATION = "NOTIFICATION"
ADDON_MANIFEST_CHANGED = "ADDON_MANIFEST_CHANGED"
IMPORT_PROGRESS = "IMPORT_PROGRESS"


def frame_text(type_: str, payload: object, **extra: object) -> str:
    return json.dumps({"type": type_, **extra, "payload": payload}, separators=(",", ":"), default=str)


def _frame(frame: object) -> str:
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or not frame["type"]:
        raise ValueError('a hub frame is a JSON object with a non-empty string "type"')
    return json.dumps(frame, separators=(",", ":"), default=str)


def addon_event_text(event: events.AddonEvent) -> str:
    """The `ADDON_EVENT` frame of an addon event (channel `addon.<key>.<event>`)."""
    payload = {
        "addon": event.addon,
        "event": event.name,
        "org_id": event.tenant or "",
        "at": event.at,
        "data": event.payload,
    }
    return frame_text(ADDON_EVENT, payload, channel=f"addon.{event.addon}.{event.name}")


def data_payload(event: events.DataEvent) -> dict[str, Any]:
    """The `DATA_EVENT` payload of the realtime protocol: who changed which row, never how."""
    return {
        "org_id": event.audience or "",
        "addon": event.addon,
        "model": event.model,
        "table": event.table,
        "action": event.action,
        "id": str(event.id),
        "actor_id": "" if event.actor_id is None else str(event.actor_id),
        "at": event.at,
        "fields": list(event.fields),
    }


def lifecycle_payload(event: events.LifecycleEvent, new_hash: str) -> dict[str, Any]:
    """`ADDON_MANIFEST_CHANGED`: metacore's keys (`addon`, `operation`, `version`, `at`) and
    the upstream kernel's (`addonKey`, `orgId`, `newHash`, `version`, `timestamp`), which the
    SDK's hot-swap (`wireHotSwapInvalidation`, `applyHotSwapReload`) reads. `newHash` is the
    installed bundle's sha256 ("" after an uninstall): it changes whenever the bundle does,
    which is what the SDK's cache-busting of an addon's frontend needs. `orgId` is "":
    installations serve every organization."""
    return {
        "addon": event.addon,
        "operation": event.operation,
        "version": event.version,
        "at": event.at,
        "addonKey": event.addon,
        "orgId": "",
        "newHash": new_hash,
        "timestamp": event.at,
    }


class HubPublisher:
    """`get_kernel().hub`: publishes frames to the channel layer."""

    def __init__(self, registry: ModelRegistry, channel_layer: BaseChannelLayer | None = None) -> None:
        self.registry = registry
        self._layer = channel_layer

    @property
    def layer(self) -> BaseChannelLayer | None:
        if self._layer is None:
            from channels.layers import get_channel_layer

            self._layer = get_channel_layer()
        return self._layer

    # -- what producers publish ----------------------------------------------------------------
    def publish_data(self, event: events.DataEvent) -> None:
        if not self._served(event.addon, event.tenant):
            return
        text = frame_text(DATA_EVENT, data_payload(event))
        # `row` = `addon.table.id` (addon keys and tables never contain dots): the consumer's
        # routing and coalescing key, kept small since every socket's copy carries it.
        base = {"type": "hub.data", "text": text, "row": f"{event.addon}.{event.table}.{event.id}".lower()}
        with telemetry.span(
            "metacore.hub.publish",
            addon=event.addon,
            model=event.model,
            tenant=event.tenant,
            action=event.action,
        ):
            self._send_many(
                [
                    (groups.data_group(event.audience, event.addon, event.table), {**base, "via": "model"}),
                    (groups.all_data_group(event.audience), {**base, "via": "all"}),
                ]
            )

    def publish_addon_event(self, event: events.AddonEvent) -> None:
        if not self._served(event.addon, event.tenant):
            return
        self._send_many(
            [
                (
                    groups.addon_event_group(event.tenant, event.addon, event.name),
                    {"type": "hub.frame", "text": addon_event_text(event)},
                )
            ]
        )

    def publish_lifecycle(self, event: events.LifecycleEvent) -> None:
        text = frame_text(ADDON_MANIFEST_CHANGED, lifecycle_payload(event, self._bundle_hash(event.addon)))
        self._send_many(
            [(groups.LIFECYCLE_GROUP, {"type": "hub.lifecycle", "text": text, "addon": event.addon})]
        )

    # -- server-side send API (upstream's SendToUser, SendToUsers, SendConditional, ConnectedUsers) --
    # Synchronous (they read presence from the database): from async code wrap them in
    # `sync_to_async`. A `frame` is a JSON object with a string "type" (e.g. {"type":
    # "NOTIFICATION", "payload": {...}}), sent as is to every selected socket, in any process.
    def send_to_user(self, user_id: str | int, frame: dict[str, Any], tenant: str | None = None) -> None:
        """Send `frame` to every open socket of one user; with `tenant`, only to the sockets
        the user opened under that organization."""
        self.send_to_users([user_id], frame, tenant=tenant)

    def send_to_users(
        self, user_ids: Iterable[str | int], frame: dict[str, Any], tenant: str | None = None
    ) -> None:
        text = _frame(frame)
        self._send_many(
            [
                (
                    groups.user_group(uid) if tenant is None else groups.tenant_user_group(tenant, uid),
                    {"type": "hub.frame", "text": text},
                )
                for uid in dict.fromkeys(str(u) for u in user_ids)
            ]
        )

    def send_conditional(
        self,
        frame: dict[str, Any],
        predicate: Callable[[presence.ConnectionInfo], bool],
        tenant: str | None = None,
    ) -> int:
        """Send `frame` to each open socket (of `tenant` when given) for which
        `predicate(presence.ConnectionInfo)` is true; returns how many were selected."""
        text = _frame(frame)
        selected = [info for info in presence.connections(tenant) if predicate(info)]
        self._send_many(
            [(groups.connection_group(info.id), {"type": "hub.frame", "text": text}) for info in selected]
        )
        return len(selected)

    def connected_users(self, tenant: str | None = None) -> list[str]:
        """Ids of the users with at least one open socket in any process (of `tenant` when given)."""
        return sorted({info.user_id for info in presence.connections(tenant)})

    def import_progress(self, user_pk: str | int, payload: dict[str, Any], tenant: str | None = None) -> None:
        """Send an `IMPORT_PROGRESS` frame to the importing user's sockets (of `tenant`)."""
        self.send_to_user(user_pk, {"type": IMPORT_PROGRESS, "payload": payload}, tenant=tenant)

    def notify(self, user_pk: str | int, payload: dict[str, Any]) -> None:
        """Send a `NOTIFICATION` frame to every open socket of one user."""
        self.send_to_user(user_pk, {"type": NOTIFICATION, "payload": payload})

    def _served(self, addon: str, tenant: str | None) -> bool:
        """Whether the addon is enabled for the event's organization: one that disabled it (or
        never had it) gets none of its events."""
        return self.registry.enabled_for(addon, tenant)

    def _bundle_hash(self, addon: str) -> str:
        try:
            digest = self.registry.installed(addon).bundle_sha256
        except NotFound:  # uninstalled
            digest = ""
        return f"sha256:{digest}" if digest else ""

    # -- delivery ------------------------------------------------------------------------------
    def _send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        layer = self.layer
        if layer is None:
            return
        if isinstance(layer, InMemoryChannelLayer):
            # Process-local groups: skip the loop hop when no socket here listens (every write
            # of a WSGI worker, a test or a management command).
            messages = [(group, message) for group, message in messages if layer.groups.get(group)]
            if not messages:
                return

        async def send_all() -> None:
            # Each process's LocalFanout is the group's only member there: the message names
            # its group so the fanout knows which of its sockets it is for.
            for group, message in messages:
                await layer.group_send(group, {**message, "group": group})

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            async_to_sync(send_all)()
        else:
            # Called from inside the event loop's thread (an async producer): never block it.
            task = loop.create_task(send_all())
            task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("hub publish failed: %s", task.exception())
