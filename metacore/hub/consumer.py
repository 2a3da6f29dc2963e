"""The hub's WebSocket consumer: the realtime protocol of `@asteby/metacore-websocket`.

Thin by design: who may see what is decided in `metacore.hub.access` (plain Python over the
kernel's services); frames are built once by the publisher and forwarded as text. Per
connection the consumer keeps

- its subscriptions (model groups, the tenant-wide group for `*`, addon event channels),
- a coalescing window per row (`HUB_COALESCE_MS`): the first event of a row goes out at
  once, later ones inside the window are merged into one frame sent when it ends,
- a bounded outbox (`HUB_MAX_BACKLOG`) drained by a sender task. When it overflows the
  backlog of data frames is discarded and replaced by one `DATA_EVENTS_DROPPED` notice (the
  client refetches); when it overflows again before that notice could even be sent, the
  client is stuck and is closed with 1013 (try again later).

Close codes: 4401 no/bad credentials, 4403 a `?channel=` the caller may not join, 1009 an
oversized frame, 1013 a stuck client, 1001 server shutdown.
"""
import asyncio
import json
import logging
from collections import deque

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from metacore import limits
from metacore.conf import metacore_settings
from metacore.host import telemetry
from metacore.hub import groups
from metacore.hub.access import ADDON_CHANNEL, HubAccess
from metacore.hub.auth import query_params
from metacore.hub.publisher import frame_text

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


class HubConsumer(AsyncWebsocketConsumer):
    access = None
    sender = None

    # -- connection lifecycle --------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # The server is shutting down (Daphne cancels every application on SIGTERM):
            # give the client a close frame rather than a dropped TCP connection.
            if self.access is not None:
                try:
                    await self.base_send({"type": "websocket.close", "code": CLOSE_GOING_AWAY,
                                          "reason": "server shutting down"})
                except Exception:  # the transport may already be gone
                    pass
            raise

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not getattr(user, "is_authenticated", False):
            reason = self.scope.get("metacore_auth_error") or "authentication required"
            return await self._refuse(CLOSE_UNAUTHENTICATED, reason)
        from metacore.kernel import get_kernel

        self.kernel = get_kernel()
        access = await database_sync_to_async(HubAccess.for_user)(self.kernel, user)
        self.loop = asyncio.get_running_loop()
        self.window = metacore_settings.HUB_COALESCE_MS / 1000
        self.max_backlog = max(1, int(metacore_settings.HUB_MAX_BACKLOG))
        self.max_frame = int(metacore_settings.HUB_MAX_FRAME_BYTES)
        self.joined = set()
        self.tokens = {}  # normalised token -> ModelRef (data subscriptions)
        self.explicit = {}  # (addon, table) -> number of tokens naming it
        self.star = False
        self.star_decisions = {}  # (addon, table) -> may read, for `*` events
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
        await self._join(groups.user_group(user.pk))
        await self._join(groups.LIFECYCLE_GROUP)
        if channel and channel.startswith("addon."):
            await self._join_addon_channel(channel)
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
        if self.sender is not None:
            self.sender.cancel()
        for window in getattr(self, "recent", {}).values():
            if window.timer is not None:
                window.timer.cancel()
        if self.channel_layer is not None:
            for group in getattr(self, "joined", ()):
                await self.channel_layer.group_discard(group, self.channel_name)
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
        return self._error("unknown_type", f'unknown frame type {frame["type"][:60]!r}')

    async def _subscribe_models(self, models, subscribe):
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return self._error("bad_frame", '"models" must be a list of strings')
        tokens = list(dict.fromkeys(m.strip().lower() for m in models if m.strip()))
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

    async def _add_tokens(self, tokens):
        limit = int(metacore_settings.HUB_MAX_MODELS_PER_CONNECTION)
        wanted, refused = [], []
        for token in tokens:
            if token in self.tokens or (token == "*" and self.star):
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
            self.star_decisions.clear()
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
        if token == "*":
            if self.star:
                self.star = False
                await self._leave(groups.all_data_group(self.access.tenant))
                await self._leave(groups.all_data_group(None))
            return
        ref = self.tokens.pop(token, None)
        if ref is None:
            return
        self.explicit[ref.ident] -= 1
        if not self.explicit[ref.ident]:
            del self.explicit[ref.ident]
            await self._leave(self._model_group(ref))

    def _model_group(self, ref):
        """Rows of an org-scoped table are published to their tenant's group; rows of a shared
        table to the shared one."""
        return groups.data_group(self.access.tenant if ref.org_scoped else None, ref.addon, ref.table)

    async def _subscribe_channel(self, channel, subscribe):
        match = ADDON_CHANNEL.fullmatch(channel) if isinstance(channel, str) else None
        if match is None:
            return self._error("bad_channel", 'channels are "addon.<key>.<event>"', channel=str(channel)[:100])
        if not subscribe:
            if channel in self.channels:
                self.channels.discard(channel)
                await self._leave(groups.addon_event_group(self.access.tenant, match["addon"], match["event"]))
            return self._control(frame_text("unsubscribed", {"channel": channel}))
        allowed, reason = await database_sync_to_async(self.access.may_subscribe_channel)(match["addon"], match["event"])
        if not allowed:
            await database_sync_to_async(self.access.audit_subscribe)(channel, "deny", reason, addon=match["addon"])
            return self._error("forbidden", reason, channel=channel)
        await self._join_addon_channel(channel)
        self._control(frame_text("subscribed", {"channel": channel}))

    async def _join_addon_channel(self, channel):
        match = ADDON_CHANNEL.fullmatch(channel)
        self.channels.add(channel)
        await self._join(groups.addon_event_group(self.access.tenant, match["addon"], match["event"]))

    # -- channel layer messages (from the publisher) -----------------------------------------
    async def hub_data(self, message):
        addon, table, _ = message["row"].split(".", 2)
        ident = (addon, table)
        if message["via"] == "model":
            if ident not in self.explicit:
                return  # unsubscribed while the event was in flight
        else:
            if not self.star or ident in self.explicit:
                return  # not a `*` subscriber, or it arrives through its model group
            if not await self._star_may_read(ident):
                return
        self._offer(message, addon, table)

    async def hub_frame(self, message):
        self._control(message["text"])

    async def hub_lifecycle(self, message):
        self.star_decisions.clear()
        self._control(message["text"])

    async def _star_may_read(self, ident):
        allowed = self.star_decisions.get(ident)
        if allowed is None:
            allowed = await database_sync_to_async(self.access.may_read)(*ident)
            self.star_decisions[ident] = allowed
        return allowed

    # -- coalescing ---------------------------------------------------------------------------
    def _offer(self, message, addon, table):
        if self.window <= 0:
            return self._enqueue(message["text"], DATA, addon, table)
        row = message["row"]
        now = self.loop.time()
        window = self.recent.get(row)
        if window is None or now >= window.until:
            if len(self.recent) > 1024:
                self._prune(now)
            self.recent[row] = _Window(now + self.window)
            return self._enqueue(message["text"], DATA, addon, table)
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
        self._enqueue(frame_text("DATA_EVENT", payload), DATA, payload["addon"].lower(), payload["table"].lower())

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
        self.outbox.append((DROP_NOTICE, frame_text("DATA_EVENTS_DROPPED", {"dropped": dropped, "models": sorted(models)}),
                            None, None))
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
        await self.send(text_data=text)

    async def _close(self, code, reason):
        self.closing = True
        if self.sender is not None:
            self.sender.cancel()
        await self.close(code=code, reason=reason)

    # -- groups --------------------------------------------------------------------------------
    async def _join(self, group):
        if self.channel_layer is not None and group not in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.add(group)

    async def _leave(self, group):
        if self.channel_layer is not None and group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.joined.discard(group)
