"""The hub's WebSocket consumer: the realtime protocol of `@asteby/metacore-websocket`.

Thin by design: who may see what is decided in `metacore.hub.access` (plain Python over the
kernel's services); frames are built once by the publisher and forwarded as text. Sockets do
not join channel-layer groups themselves: the process's `LocalFanout` does, once per group,
and hands each message to its sockets (`deliver`). Per connection the consumer keeps

- its subscriptions (model groups, the tenant-wide group for `*`, addon event channels),
- a coalescing window per row (`HUB_COALESCE_MS`): the first event of a row goes out at
  once, later ones inside the window are merged into one frame sent when it ends,
- a bounded outbox (`HUB_MAX_BACKLOG`) drained by a sender task. When it overflows the
  backlog of data frames is discarded and replaced by one `DATA_EVENTS_DROPPED` notice (the
  client refetches); when it overflows again before that notice could even be sent, the
  client is stuck and is closed with 1013 (try again later).

Before an event reaches a socket, its `Principal` (user + credential, shared by the sockets
opened with it) must have been verified within `HUB_RECHECK_SECONDS`; otherwise the event
waits for a recheck, and a socket that no longer passes is closed: 4401 when the token or
session no longer authenticates or the user is inactive, 4403 when a subscribed model's read
permission was revoked or the user's organization changed.

Close codes: 4401 no/bad credentials, 4403 a `?channel=` the caller may not join (or lost
access, above), 1009 an oversized frame, 1013 a stuck client, 1001 server shutdown.
"""

import asyncio
import datetime
import functools
import json
import logging
import uuid
from collections import deque

from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from metacore import limits, telemetry
from metacore.conf import metacore_settings
from metacore.hub import groups, presence
from metacore.hub.access import ADDON_CHANNEL, HubAccess, verifier
from metacore.hub.auth import credential, query_params
from metacore.hub.fanout import Principal, fanout_for
from metacore.hub.publisher import frame_text
from metacore.permissions.naming import model_permission

log = logging.getLogger("metacore.hub")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013
CLOSE_GOING_AWAY = 1001

DATA, CONTROL, DROP_NOTICE = 0, 1, 2  # outbox item kinds: only DATA frames may be discarded


class _Window:
    """Coalescing state of one row: until when later events are held, and what is held."""

    __slots__ = ("until", "payload", "merged", "timer")

    def __init__(self, until):
        self.until = until
        self.payload = None
        self.merged = 0
        self.timer = None

    def hold(self, text):
        payload = json.loads(text)["payload"]
        if self.payload is None:
            self.payload = payload
        else:
            fields = dict.fromkeys(self.payload.get("fields") or ())
            fields.update(dict.fromkeys(payload.get("fields") or ()))
            payload["fields"] = list(fields)
            self.payload = payload
        self.merged += 1


def client_names(ref):
    """The names the official client's matcher (`dataEventMatches`) accepts for a frame of
    `ref`: the model key, the table, `addon.model`, lowercased."""
    return {ref.model.lower(), ref.table.lower(), f"{ref.addon}.{ref.model}".lower()}


@functools.lru_cache(maxsize=1024)
def respelled(text, token):
    """A `DATA_EVENT` frame as seen through a subscription spelled `token` that the official
    client would not match on the canonical frame (`addon.table`): `model` is that spelling
    (also a valid REST name) and `table` is left out, so no other spelling matches it twice."""
    frame = json.loads(text)
    payload = frame["payload"]
    payload["model"] = token
    payload.pop("table", None)
    return json.dumps(frame, separators=(",", ":"))


class HubConsumer(AsyncWebsocketConsumer):
    # No channel per socket: the process's LocalFanout receives for every socket.
    channel_layer_alias = None
    fanout_layer_alias = DEFAULT_CHANNEL_LAYER
    access = None
    sender = None
    fanout = None
    principal = None
    deferred = None  # messages arriving during a SUBSCRIBE/UNSUBSCRIBE, delivered after its ack
    connection = None  # presence.ConnectionInfo once accepted

    # -- connection lifecycle --------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # The server is shutting down (Daphne cancels every application on SIGTERM):
            # give the client a close frame rather than a dropped TCP connection.
            if self.access is not None:
                try:
                    await self.base_send(
                        {
                            "type": "websocket.close",
                            "code": CLOSE_GOING_AWAY,
                            "reason": "server shutting down",
                        }
                    )
                except Exception:  # noqa: S110 (the transport may already be gone)
                    pass
            raise

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            reason = self.scope.get("metacore_auth_error") or "authentication required"
            return await self._refuse(CLOSE_UNAUTHENTICATED, reason)
        from metacore.kernel import get_kernel

        kernel = get_kernel()
        self.fanout = fanout_for(get_channel_layer(self.fanout_layer_alias))
        key = (user.pk, credential(self.scope))
        ttl = float(metacore_settings.HUB_RECHECK_SECONDS)
        self.principal = self.fanout.principal(
            key, lambda: Principal(key, verifier(kernel.permissions, user.pk, key[1]), ttl)
        )
        self.principal.consumers[self] = None
        verdict = self.principal.verdict
        if not self.principal.fresh() or verdict.code:
            verdict = await self.principal.check()
        if verdict.code:
            return await self._refuse(verdict.code, verdict.reason)
        access = HubAccess(
            user,
            verdict.tenant,
            permissions=kernel.permissions,
            registry=kernel.registry,
            enforcer=kernel.enforcer,
            audit=kernel.audit,
        )
        self.loop = asyncio.get_running_loop()
        self.window = metacore_settings.HUB_COALESCE_MS / 1000
        self.max_backlog = max(1, int(metacore_settings.HUB_MAX_BACKLOG))
        self.max_frame = int(metacore_settings.HUB_MAX_FRAME_BYTES)
        self.joined = set()
        self.tokens = {}  # normalised token -> ModelRef (data subscriptions)
        self.explicit = {}  # (addon, table) -> number of tokens naming it
        self.spellings = {}  # (addon, table) -> (send the canonical frame?, tokens to respell for)
        self.star = False
        self.channels = set()  # addon event channels
        self.recent = {}  # row -> _Window
        self.outbox = deque()
        self.wakeup = asyncio.Event()
        self.drop_notice_pending = False
        self.closing = False

        channel = query_params(self.scope).get("channel")
        if channel:
            allowed, reason = await self._may_join_query_channel(access, channel)
            if not allowed:
                await database_sync_to_async(access.audit_connect)("deny", reason, channel=channel)
                return await self._refuse(CLOSE_FORBIDDEN, reason)
        self.access = access
        self.connection = presence.ConnectionInfo(
            uuid.uuid4().hex,
            str(user.pk),
            access.tenant or "",
            channel or "",
            datetime.datetime.now(datetime.UTC),
        )
        await self._join(groups.user_group(user.pk))
        if access.tenant is not None:
            await self._join(groups.tenant_user_group(access.tenant, user.pk))
        await self._join(groups.connection_group(self.connection.id))
        await self._join(groups.LIFECYCLE_GROUP)
        if channel and channel.startswith("addon."):
            await self._join_addon_channel(channel)
        await presence.heartbeat().add(self.connection)  # before the accept: present once the client is
        await self.accept()
        self.sender = asyncio.ensure_future(self._send_loop())
        telemetry.hub_connection(1, tenant=access.tenant)
        await database_sync_to_async(access.audit_connect)("allow", channel=channel or "")

    async def _refuse(self, code, reason):
        """Accept then close: a WebSocket close code and reason reach the client, an HTTP 403
        on the handshake would not."""
        await self.accept()
        await self.close(code=code, reason=reason)

    async def _may_join_query_channel(self, access, channel):
        if channel.startswith("org:"):
            if access.tenant is not None and channel[4:] == access.tenant:
                return True, ""
            return False, "channel is not your organization"
        if channel.startswith("user:"):
            if channel[5:] == str(self.scope["user"].pk):
                return True, ""
            return False, "channel is not your user channel"
        match = ADDON_CHANNEL.fullmatch(channel)
        if match:
            return await database_sync_to_async(access.may_subscribe_channel)(match["addon"], match["event"])
        return False, f"unknown channel {channel[:100]!r}"

    async def websocket_disconnect(self, message):
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
        for window in getattr(self, "recent", {}).values():
            if window.timer is not None:
                window.timer.cancel()
        for group in list(getattr(self, "joined", ())):
            await self._leave(group)
        if self.principal is not None:
            self.fanout.release(self.principal, self)
        if self.connection is not None:
            await presence.heartbeat().remove(self.connection.id)
        if self.access is not None:
            telemetry.hub_connection(-1, tenant=self.access.tenant)
        await super().websocket_disconnect(message)

    # -- client frames -----------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if self.access is None or self.closing:
            return
        size = len(bytes_data) if bytes_data is not None else len(text_data.encode())
        if size > self.max_frame:
            return await self._close(CLOSE_TOO_BIG, f"frame of {size} bytes exceeds {self.max_frame}")
        if bytes_data is not None:
            return self._error("bad_frame", "binary frames are not supported; send JSON text")
        try:
            frame = limits.loads(text_data)
        except ValueError as exc:
            return self._error("bad_json", str(exc))
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return self._error("bad_frame", 'a frame is a JSON object with a string "type"')
        kind = frame["type"].upper()
        if kind == "PING":
            return self._control(frame_text("pong", frame.get("payload")))
        if kind in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if "models" in frame:
                return await self._subscribe_models(frame["models"], kind == "SUBSCRIBE")
            if "channel" in frame:
                return await self._subscribe_channel(frame["channel"], kind == "SUBSCRIBE")
            return self._error("bad_frame", f'{frame["type"]} needs "models" or "channel"')
        return self._error("unknown_type", f"unknown frame type {frame['type'][:60]!r}")

    async def _subscribe_models(self, models, subscribe):
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return self._error("bad_frame", '"models" must be a list of strings')
        tokens = list(dict.fromkeys(m.strip().lower() for m in models if m.strip()))
        # Events that arrive while this runs wait and follow the ack, as they would if the
        # socket's messages were handled one at a time.
        self.deferred = [] if self.deferred is None else self.deferred
        try:
            refused = []
            if subscribe:
                refused = await self._add_tokens(tokens)
            else:
                for token in tokens:
                    await self._drop_token(token)
            payload = {"models": sorted(self.tokens) + (["*"] if self.star else [])}
            if refused:
                payload["refused"] = refused
            self._control(frame_text("DATA_SUBSCRIBED", payload))
        finally:
            deferred, self.deferred = self.deferred, None
            for message in deferred:
                self.deliver(message)

    async def _add_tokens(self, tokens):
        limit = int(metacore_settings.HUB_MAX_MODELS_PER_CONNECTION)
        wanted, refused = [], []
        for token in tokens:
            if token in self.tokens or (token == "*" and self.star):  # noqa: S105 (a channel token)
                continue
            if len(self.tokens) + len(wanted) + self.star >= limit:
                refused.append({"model": token, "reason": f"at most {limit} models per connection"})
            else:
                wanted.append(token)
        access = self.access
        await database_sync_to_async(access.fresh)()
        if "*" in wanted:
            wanted.remove("*")
            self.star = True
            await self._join(groups.all_data_group(access.tenant))
            await self._join(groups.all_data_group(None))
        results = await database_sync_to_async(access.resolve_models)(wanted)
        granted = []
        for token, ref, reason in results:
            if ref is None:
                refused.append({"model": token, "reason": reason})
                continue
            self.tokens[token] = ref
            self.explicit[ref.ident] = self.explicit.get(ref.ident, 0) + 1
            self._respell(ref.ident)
            if self.explicit[ref.ident] == 1:
                await self._join(self._model_group(ref))
            granted.append(token)
        await database_sync_to_async(self._audit_models)(granted, refused)
        return refused

    def _audit_models(self, granted, refused):
        for item in refused:
            self.access.audit_subscribe(item["model"], "deny", item["reason"])
        if granted:
            self.access.audit_subscribe(",".join(granted), "allow", models=granted)

    async def _drop_token(self, token):
        if token == "*":  # noqa: S105 (a channel token)
            if self.star:
                self.star = False
                await self._leave(groups.all_data_group(self.access.tenant))
                await self._leave(groups.all_data_group(None))
            return
        ref = self.tokens.pop(token, None)
        if ref is None:
            return
        self.explicit[ref.ident] -= 1
        self._respell(ref.ident)
        if not self.explicit[ref.ident]:
            del self.explicit[ref.ident]
            await self._leave(self._model_group(ref))

    def _respell(self, ident):
        """Which frames a model's events go out as: the canonical one when a token of it is a
        name the official client matches, plus one respelled frame per token that is not."""
        refs = [(t, ref) for t, ref in self.tokens.items() if ref.ident == ident]
        respelled_tokens = tuple(t for t, ref in refs if t not in client_names(ref))
        if respelled_tokens:
            self.spellings[ident] = (len(respelled_tokens) < len(refs), respelled_tokens)
        else:
            self.spellings.pop(ident, None)

    def _model_group(self, ref):
        """Rows of an org-scoped table are published to their tenant's group; rows of a shared
        table to the shared one."""
        return groups.data_group(self.access.tenant if ref.org_scoped else None, ref.addon, ref.table)

    async def _subscribe_channel(self, channel, subscribe):
        match = ADDON_CHANNEL.fullmatch(channel) if isinstance(channel, str) else None
        if match is None:
            return self._error(
                "bad_channel", 'channels are "addon.<key>.<event>"', channel=str(channel)[:100]
            )
        if not subscribe:
            if channel in self.channels:
                self.channels.discard(channel)
                await self._leave(
                    groups.addon_event_group(self.access.tenant, match["addon"], match["event"])
                )
            return self._control(frame_text("unsubscribed", {"channel": channel}))
        allowed, reason = await database_sync_to_async(self.access.may_subscribe_channel)(
            match["addon"], match["event"]
        )
        if not allowed:
            await database_sync_to_async(self.access.audit_subscribe)(
                channel, "deny", reason, addon=match["addon"]
            )
            return self._error("forbidden", reason, channel=channel)
        await self._join_addon_channel(channel)
        self._control(frame_text("subscribed", {"channel": channel}))

    async def _join_addon_channel(self, channel):
        match = ADDON_CHANNEL.fullmatch(channel)
        self.channels.add(channel)
        await self._join(groups.addon_event_group(self.access.tenant, match["addon"], match["event"]))

    # -- messages from the process's fanout (published frames) ---------------------------------
    def deliver(self, message):
        """Called by the LocalFanout, in the event loop, for each message of a group this socket
        is in; synchronous so one message reaches every local socket without a task hop."""
        if self.access is None or self.closing:
            return
        if self.deferred is not None:
            return self.deferred.append(message)
        if not self.principal.fresh():
            return self.principal.hold(self, message)
        if message["type"] == "hub.data":
            self._data(message)
        elif message["type"] == "hub.lifecycle":
            self.principal.expire()  # grants may have changed with the addon
            self._control(message["text"])
        else:
            self._control(message["text"])

    def _data(self, message):
        addon, table, _ = message["row"].split(".", 2)
        ident = (addon, table)
        if message["via"] == "model":
            if ident not in self.explicit:
                return  # unsubscribed while the event was in flight
        elif not self.star or ident in self.explicit:
            return  # not a `*` subscriber, or it arrives through its model group
        elif not self.principal.verdict.may(model_permission(addon, table, "read")):
            return
        self._offer(message, addon, table)

    def rechecked(self, verdict):
        """The principal was re-verified: close this socket if it no longer passes."""
        if self.access is None or self.closing:
            return
        code, reason = verdict.code, verdict.reason
        if not code and verdict.tenant != self.access.tenant:
            code, reason = CLOSE_FORBIDDEN, "organization changed"
        if not code:
            for ref in self.tokens.values():
                codename = model_permission(ref.addon, ref.table, "read")
                if not verdict.may(codename):
                    code, reason = CLOSE_FORBIDDEN, f'permission revoked: missing "{codename}"'
                    break
        if code:
            self.closing = True
            asyncio.ensure_future(self._revoke(code, reason))

    async def _revoke(self, code, reason):
        if self.sender is not None:
            self.sender.cancel()  # nothing queued goes out any more
        await database_sync_to_async(self.access.audit_recheck)(code, reason)
        await self._close(code, reason)

    # -- coalescing ---------------------------------------------------------------------------
    def _offer(self, message, addon, table):
        if self.window <= 0:
            return self._emit(message["text"], addon, table)
        row = message["row"]
        now = self.loop.time()
        window = self.recent.get(row)
        if window is None or now >= window.until:
            if len(self.recent) > 1024:
                self._prune(now)
            self.recent[row] = _Window(now + self.window)
            return self._emit(message["text"], addon, table)
        window.hold(message["text"])
        if window.timer is None:
            window.timer = self.loop.call_later(window.until - now, self._flush, row)

    def _flush(self, row):
        window = self.recent.pop(row, None)
        if window is None or window.payload is None:
            return
        payload = window.payload
        if window.merged > 1:
            payload["coalesced"] = window.merged - 1
        # A row that keeps changing gets at most one frame per window.
        self.recent[row] = _Window(self.loop.time() + self.window)
        self._emit(frame_text("DATA_EVENT", payload), payload["addon"].lower(), payload["table"].lower())

    def _emit(self, text, addon, table):
        canonical, tokens = self.spellings.get((addon, table), (True, ()))
        if canonical:
            self._enqueue(text, DATA, addon, table)
        for token in tokens:
            self._enqueue(respelled(text, token), DATA, addon, table)

    def _prune(self, now):
        self.recent = {row: w for row, w in self.recent.items() if w.until > now or w.timer is not None}

    # -- outbox and sender --------------------------------------------------------------------
    def _control(self, text):
        self._enqueue(text, CONTROL)

    def _error(self, code, message, **extra):
        self._control(frame_text("error", {"code": code, "message": message, **extra}))

    def _enqueue(self, text, kind, addon=None, table=None):
        if self.closing:
            return
        if kind == DATA and len(self.outbox) >= self.max_backlog:
            return self._overflow(addon, table)
        self.outbox.append((kind, text, addon, table))
        self.wakeup.set()

    def _overflow(self, addon, table):
        if self.drop_notice_pending:
            log.warning("hub: closing a stuck client (%s)", self.access.actor)
            self.closing = True
            asyncio.ensure_future(self._close(CLOSE_TRY_LATER, "client too slow: events were dropped"))
            return
        kept, dropped, models = deque(), 1, {self._model_name(addon, table)}
        for item in self.outbox:
            if item[0] == DATA:
                dropped += 1
                models.add(self._model_name(item[2], item[3]))
            else:
                kept.append(item)
        self.outbox = kept
        self.drop_notice_pending = True
        self.outbox.append(
            (
                DROP_NOTICE,
                frame_text("DATA_EVENTS_DROPPED", {"dropped": dropped, "models": sorted(models)}),
                None,
                None,
            )
        )
        self.wakeup.set()

    def _model_name(self, addon, table):
        for ref in self.tokens.values():
            if ref.ident == (addon, table):
                return ref.model.lower()
        return table

    async def _send_loop(self):
        while True:
            while self.outbox:
                kind, text, _, _ = self.outbox.popleft()
                await self.transmit(text)
                if kind == DROP_NOTICE:
                    self.drop_notice_pending = False
            self.wakeup.clear()
            await self.wakeup.wait()

    async def transmit(self, text):
        # Straight to the server's send: this runs once per frame per socket, and
        # `AsyncWebsocketConsumer.send` would only build the same message two calls deeper.
        await self.base_send({"type": "websocket.send", "text": text})

    async def _close(self, code, reason):
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
        await self.close(code=code, reason=reason)

    # -- groups --------------------------------------------------------------------------------
    async def _join(self, group):
        if group not in self.joined:
            self.joined.add(group)
            await self.fanout.join(group, self)

    async def _leave(self, group):
        if group in self.joined:
            self.joined.discard(group)
            await self.fanout.leave(group, self)
