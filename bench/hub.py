"""Hub fanout: 1,000 connected clients subscribed to one model, a burst of committed writes.

Goal (issue 18): the hub's per-process fanout (`metacore.hub.fanout`: one channel-layer
message per process per group) delivers >= 5x the events/s of a bare Channels fanout
(one `group_send` reaching one consumer per socket), with p99 under 1 s for a 20-write burst,
in memory and over Redis.

Each write is a transaction whose commit publishes one `DataEvent` (what the store does
after its insert); a frame's latency runs from the event's timestamp, taken just before the
commit, to its receipt by the client. Reported per layer: delivered events per second and
p50/p99 commit->receipt latency for the hub, next to a bare Channels fanout of the same
frames in the same run (a consumer that joins one group and forwards each group message,
fed by one `group_send` per write), and the ratios hub/bare.

1. In-memory layer, in process: the clients are ASGI connections driven directly (as
   Channels' WebsocketCommunicator does) against the real `HubConsumer` and the bare one.
2. Redis (channels_redis' pub/sub layer, as the sandbox project configures it) across two
   processes: this process publishes (the hub's publisher, or a bare `group_send`); a
   Daphne process serves `bench._hub_asgi` to 1,000 real WebSocket connections, read here
   by a minimal client (`_WireClient`) so that the figure measures the server. Skipped
   when Redis is not reachable.

Size: BENCH_HUB_CLIENTS (default 1000) and BENCH_HUB_WRITES (default 20, so the four runs
take a few minutes on two cores; BENCH_HUB_WRITES=200 is the issue's full burst, 200,000
frames per run). Latency includes queueing: every write of the burst is committed at once,
so later frames wait behind earlier ones, in the hub and the baseline alike.
"""

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from bench._support import database_url, setup_django

CLIENTS = int(os.environ.get("BENCH_HUB_CLIENTS", 1000))
WRITES = int(os.environ.get("BENCH_HUB_WRITES", 20))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
ROOT = Path(__file__).resolve().parent.parent
MANIFEST = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": "benchhub", "name": "Bench hub", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [
        {
            "key": "Orders",
            "table": "orders",
            "label": "Orders",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "title", "type": "text", "not_null": True},
            ],
        }
    ],
}
SUBSCRIBE = json.dumps({"type": "SUBSCRIBE", "models": ["orders"]})


# -- set-up ------------------------------------------------------------------------------------
def _prepare():
    """Install the addon; one user of one tenant allowed to read it, with a token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from metacore.kernel import get_kernel
    from metacore.models import TenantMembership

    with tempfile.TemporaryDirectory() as bundle:
        (Path(bundle) / "manifest.json").write_text(json.dumps(MANIFEST))
        get_kernel().installer.install(bundle)
    user = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    tenant = str(uuid.uuid4())
    TenantMembership.objects.create(user=user, organization_id=tenant)
    get_kernel().permissions.grant(user, ["benchhub.orders.read"])
    return user, tenant, Token.objects.create(user=user).key


def _write_all(kind, tenant):
    """WRITES commits, each publishing one event: through the hub (`data_changed`) or as a
    bare `group_send` of the same frame."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import transaction

    from bench._hub_asgi import BARE_GROUP
    from metacore import events
    from metacore.hub.publisher import DATA_EVENT, data_payload, frame_text

    layer = get_channel_layer()
    for _ in range(WRITES):
        event = events.DataEvent(
            addon="benchhub",
            model="Orders",
            table="orders",
            action="created",
            id=str(uuid.uuid4()),
            tenant=tenant,
            actor_id="1",
            fields=("title",),
        )
        with transaction.atomic():
            if kind == "hub":
                events.publish_on_commit(events.data_changed, event)
            else:
                text = frame_text(DATA_EVENT, data_payload(event))
                transaction.on_commit(
                    lambda text=text: async_to_sync(layer.group_send)(
                        BARE_GROUP, {"type": "bare.frame", "text": text}
                    )
                )


class _Receipts:
    """What one client received: (receipt time, frame text) of each data frame."""

    def __init__(self):
        self.frames = []
        self.dropped = 0
        self.lost = False  # closed before every frame arrived
        self.done = asyncio.Event()
        self.acked = asyncio.Event()

    def take(self, text):
        if text.startswith('{"type":"DATA_EVENT"'):
            self.frames.append((time.time(), text))
            if len(self.frames) >= WRITES:
                self.done.set()
        elif text.startswith('{"type":"DATA_SUBSCRIBED"'):
            self.acked.set()
        elif text.startswith('{"type":"DATA_EVENTS_DROPPED"'):
            self.dropped += json.loads(text)["payload"]["dropped"]
            self.done.set()


def _stats(receipts, elapsed_from):
    latencies, last = [], elapsed_from
    for client in receipts:
        for received, text in client.frames:
            at = datetime.fromisoformat(json.loads(text)["payload"]["at"]).timestamp()
            latencies.append((received - at) * 1000)
            last = max(last, received)
    delivered = len(latencies)
    latencies.sort()
    pick = (
        (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))])
        if latencies
        else (lambda q: float("nan"))
    )
    return {
        "delivered": delivered,
        "expected": CLIENTS * WRITES,
        "dropped": sum(c.dropped for c in receipts),
        "lost": sum(c.lost for c in receipts),
        "events_per_s": delivered / max(last - elapsed_from, 1e-9),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


async def _wait_all(receipts, timeout=900):
    await asyncio.wait_for(asyncio.gather(*(r.done.wait() for r in receipts)), timeout)


def _cpu_seconds(pid=None):
    """CPU time (user + system) of this process, or of process `pid` (Linux /proc; None
    elsewhere). On a shared machine the wall-clock figures stretch with the load; the CPU a
    burst costs does not, so it is reported beside them."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- 1. in-memory layer, in process --------------------------------------------------------------
class _AsgiClient:
    """One WebSocket connection driven directly through the ASGI interface."""

    def __init__(self, app, scope):
        self.receipts = _Receipts()
        self.accepted = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(app(scope, self.inbox.get, self.send))

    async def send(self, message):
        if message["type"] == "websocket.accept":
            self.accepted.set()
        elif message["type"] == "websocket.send":
            self.receipts.take(message["text"])

    async def close(self):
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await self.task


async def _inmemory(kind, user, tenant):
    from channels.db import database_sync_to_async

    from bench._hub_asgi import BareConsumer
    from metacore.hub.consumer import HubConsumer

    app = (HubConsumer if kind == "hub" else BareConsumer).as_asgi()
    scope = {
        "type": "websocket",
        "path": "/api/ws",
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "user": user,
    }
    clients = [_AsgiClient(app, dict(scope)) for _ in range(CLIENTS)]
    await asyncio.wait_for(asyncio.gather(*(c.accepted.wait() for c in clients)), 600)
    if kind == "hub":
        for client in clients:
            client.inbox.put_nowait({"type": "websocket.receive", "text": SUBSCRIBE})
        await asyncio.wait_for(asyncio.gather(*(c.receipts.acked.wait() for c in clients)), 600)
    start, cpu = time.time(), _cpu_seconds()
    await database_sync_to_async(_write_all)(kind, tenant)
    receipts = [c.receipts for c in clients]
    await _wait_all(receipts)
    result = _stats(receipts, start)
    result["cpu"] = {"process": _cpu_seconds() - cpu}
    for client in clients:
        await client.close()
    return result


def _fresh_layers(settings_value):
    from channels.layers import channel_layers
    from django.test.utils import override_settings

    from metacore.kernel import reset_kernel

    override = override_settings(CHANNEL_LAYERS=settings_value)
    override.enable()
    channel_layers.backends.clear()
    reset_kernel()
    return override


# -- 2. Redis pub/sub across two processes --------------------------------------------------------
def _redis_reachable():
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _start_daphne():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sandbox_project.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
    }
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("daphne")),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "bench._hub_asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(ROOT / "var" / "bench-hub-daphne.log", "w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/realtime/info", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("the bench Daphne server did not start")
    return process, port


class _WireClient(asyncio.Protocol):
    """A WebSocket client (RFC 6455) reduced to what the bench needs: handshake, unmasked
    server frames parsed as they arrive in `data_received`, masked client text/pong/close
    frames. With the `websockets` library, 1,000 connections in this one process fell
    behind the server (each frame crossed a stream reader, a sans-I/O parser generator and
    a reader task), so the figure measured the client; this one costs a few microseconds
    per frame and leaves the CPU to the server under test."""

    def __init__(self, host, path, receipts):
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.receipts = receipts
        self.buffer = b""
        self.fragments = []
        self.transport = None
        self.opened = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self.buffer += data
        if not self.opened.done():
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return self.transport.close()
            self.buffer = rest
            self.opened.set_result(None)
        self._frames()

    def _frames(self):
        buf = self.buffer
        while len(buf) >= 2:
            fin, opcode, length, at = buf[0] & 0x80, buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length >= 126:
                at = 4 if length == 126 else 10
                if len(buf) < at:
                    break
                length = int.from_bytes(buf[2:at], "big")
            if len(buf) < at + length:
                break
            payload, buf = buf[at : at + length], buf[at + length :]
            if opcode in (0, 1):  # text, or a continuation of it
                self.fragments.append(payload)
                if fin:
                    self.receipts.take(b"".join(self.fragments).decode())
                    self.fragments = []
            elif opcode == 9:
                self._send(0xA, payload)  # pong
            elif opcode == 8:
                self._send(0x8, payload[:2])
                self.transport.close()
        self.buffer = buf

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        size = len(payload)
        length = bytes([0x80 | size]) if size < 126 else bytes([0xFE]) + size.to_bytes(2, "big")
        self.transport.write(bytes([0x80 | opcode]) + length + mask + masked)

    def send_text(self, text):
        self._send(0x1, text.encode())

    def connection_lost(self, exc):
        self.receipts.lost = not self.receipts.done.is_set()
        self.receipts.done.set()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        self.closed.set_result(None)

    def close(self):
        if not self.transport.is_closing():
            self._send(0x8, (1000).to_bytes(2, "big"))


async def _redis(kind, tenant, token, port, server_pid):
    from channels.db import database_sync_to_async

    path = f"/api/ws?token={token}" if kind == "hub" else "/bench/bare"
    loop = asyncio.get_running_loop()
    clients = []

    async def open_socket():
        for attempt in range(6):  # a loaded server may drop a handshake; the bench is not about that
            receipts = _Receipts()
            try:
                _, client = await loop.create_connection(
                    lambda: _WireClient(f"127.0.0.1:{port}", path, receipts), "127.0.0.1", port
                )
                await asyncio.wait_for(asyncio.shield(client.opened), 30)
                return client
            except (TimeoutError, OSError):
                if attempt == 5:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    for batch in range(0, CLIENTS, 25):
        clients.extend(await asyncio.gather(*(open_socket() for _ in range(min(25, CLIENTS - batch)))))
    receipts = [client.receipts for client in clients]
    if kind == "hub":
        for client in clients:
            client.send_text(SUBSCRIBE)
        await asyncio.wait_for(asyncio.gather(*(r.acked.wait() for r in receipts)), 600)
    else:
        await asyncio.sleep(0.5)  # the bare consumers joined their group on connect
    start, cpu, server_cpu = time.time(), _cpu_seconds(), _cpu_seconds(server_pid)
    await database_sync_to_async(_write_all)(kind, tenant)
    await _wait_all(receipts)
    result = _stats(receipts, start)
    result["cpu"] = {"clients and publisher": _cpu_seconds() - cpu}
    if server_cpu is not None:
        result["cpu"]["server"] = _cpu_seconds(server_pid) - server_cpu
    for client in clients:
        client.close()
    await asyncio.wait_for(asyncio.gather(*(client.closed for client in clients)), 60)
    return result


# -- report --------------------------------------------------------------------------------------
def _report(title, hub, bare, load_before):
    """`load_before`: the 1-minute load average when the pair started (the machine's other
    work is part of every figure; it is printed with them)."""
    print(
        f"{title}: {CLIENTS} clients x {WRITES} writes"
        f" (load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end)"
    )
    for name, r in (("hub", hub), ("bare group_send", bare)):
        print(
            f"  {name:16} delivered {r['delivered']}/{r['expected']} (dropped {r['dropped']}, sockets lost {r['lost']})"
            f"  {r['events_per_s']:>9,.0f} events/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
            f"  CPU {', '.join(f'{who} {seconds:.2f} s' for who, seconds in r['cpu'].items())}"
        )
    print(
        f"  hub/bare: throughput {hub['events_per_s'] / bare['events_per_s']:.2f}x (goal >= 5x),"
        f" p50 {hub['p50_ms'] / bare['p50_ms']:.2f}x, p99 {hub['p99_ms'] / bare['p99_ms']:.2f}x;"
        f" hub p99 {hub['p99_ms'] / 1000:.2f} s (goal < 1 s)",
        flush=True,
    )


def main():
    setup_django()
    user, tenant, token = _prepare()

    layer = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}
    override = _fresh_layers(layer)
    load = os.getloadavg()[0]
    try:
        bare = asyncio.run(_inmemory("bare", user, tenant))
        hub = asyncio.run(_inmemory("hub", user, tenant))
    finally:
        override.disable()
    _report("in-memory layer (one process)", hub, bare, load)

    if not _redis_reachable():
        print("Redis pub/sub: skipped (no Redis on 127.0.0.1:6379)")
        return
    layer = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    override = _fresh_layers(layer)
    process, port = _start_daphne()
    load = os.getloadavg()[0]
    try:
        bare = asyncio.run(_redis("bare", tenant, token, port, process.pid))
        hub = asyncio.run(_redis("hub", tenant, token, port, process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        override.disable()
    _report("Redis pub/sub (publisher process -> Daphne process)", hub, bare, load)


if __name__ == "__main__":
    main()
