"""The hub end to end on real Daphne servers of the sandbox project: a row created through
REST reaches a `websockets` client, across two processes over channels_redis, and the
official `@asteby/metacore-websocket` client under Node; SIGTERM closes sockets with a close
frame; Daphne's heartbeats reap a peer that stopped answering."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from metacore.kernel import get_kernel, reset_kernel
from tests.hubkit import make_user, new_tenant, token_for
from tests.livekit import ROOT, Daphne

pytestmark = pytest.mark.django_db(transaction=True)
NODE_DIR = ROOT / "tests" / "node"


HELPDESK = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": "helpdesk", "name": "Helpdesk", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [{
        "key": "Tickets", "table": "tickets", "label": "Tickets",
        "columns": [
            {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
            {"name": "organization_id", "type": "uuid", "not_null": True},
            {"name": "title", "type": "text", "not_null": True},
            {"name": "status", "type": "text", "not_null": True, "default": "open"},
        ],
    }],
}


@pytest.fixture
def tickets(tmp_path):
    """An addon installed for real (`helpdesk`, model Tickets/tickets, org-scoped), and a user
    of one tenant allowed to read and create its rows."""
    (tmp_path / "manifest.json").write_text(json.dumps(HELPDESK))
    reset_kernel()
    get_kernel().installer.install(tmp_path)
    tenant = new_tenant()
    user = make_user("agent", tenant)
    get_kernel().permissions.grant(user, ["helpdesk.tickets.read", "helpdesk.tickets.create"])
    yield {"tenant": str(tenant), "token": token_for(user)}
    get_kernel().installer.uninstall("helpdesk", drop_data=True)  # runtime tables outlive the flush
    reset_kernel()


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    """One Daphne server (in-memory channel layer) shared by the module's tests; short
    heartbeats so a silent peer is reaped within seconds."""
    with django_db_blocker.unblock():
        (server,) = Daphne.start(extra_args=("--ping-interval", "1", "--ping-timeout", "1"))
    yield server
    server.terminate()


@pytest.fixture
def servers():
    started = []

    def start(count=1, **kwargs):
        started.extend(Daphne.start(count, **kwargs))
        return started[-count:]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in started:
        server.terminate()


async def subscribed_socket(url, token, models):
    ws = await ws_connect(f"{url}?token={token}")
    await ws.send(json.dumps({"type": "SUBSCRIBE", "models": models}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack == {"type": "DATA_SUBSCRIBED", "payload": {"models": models}}
    return ws


async def next_data_event(ws, timeout=5):
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == "DATA_EVENT":
            return frame


async def create_ticket(server, token, title):
    status, body = await asyncio.to_thread(server.request, "POST", "/api/dynamic/tickets", token, {"title": title})
    assert status == 201, body
    return body["data"]["id"]


def test_rest_create_reaches_a_websocket_client(tickets, live):
    server = live

    async def body():
        ws = await subscribed_socket(server.ws_url, tickets["token"], ["tickets"])
        row_id = await create_ticket(server, tickets["token"], "Printer on fire")
        frame = await next_data_event(ws)
        assert "Printer" not in json.dumps(frame)
        payload = frame["payload"]
        assert (payload["org_id"], payload["addon"], payload["model"], payload["table"], payload["action"],
                payload["id"]) == (tickets["tenant"], "helpdesk", "Tickets", "tickets", "created", row_id)
        await ws.close()

    asyncio.run(body())


def test_two_daphne_processes_share_fanout_over_redis(tickets, servers):
    a, b = servers(2, redis=True)

    async def body():
        ws = await subscribed_socket(b.ws_url, tickets["token"], ["tickets"])
        row_id = await create_ticket(a, tickets["token"], "Written through A")
        frame = await next_data_event(ws)
        assert frame["payload"]["id"] == row_id and frame["payload"]["org_id"] == tickets["tenant"]
        await ws.close()

    asyncio.run(body())


@pytest.fixture(scope="session")
def node_client():
    """`npm ci` of tests/node (the official client from the npm registry) when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js/npm are not installed")
    if not (NODE_DIR / "node_modules" / "@asteby" / "metacore-websocket").is_dir():
        subprocess.run([npm, "ci"], cwd=NODE_DIR, check=True, capture_output=True, timeout=300)
    return node


def test_official_realtime_client_receives_a_data_event(tickets, live, node_client):
    server = live
    env = {**os.environ, "METACORE_HTTP": server.url, "METACORE_TOKEN": tickets["token"], "METACORE_MODEL": "Tickets"}
    probe = subprocess.Popen([node_client, "--experimental-websocket", "--no-warnings", "--import",
                              "./register-extensionless.mjs", "realtime_probe.mjs"],
                             cwd=NODE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(probe.stdout.readline() or '{"error": "no output"}')
        assert "ready" in ready, (ready, probe.stderr.read() if probe.poll() is not None else "")
        assert ready["ready"] == ["tickets"] and ready["channel"] == f"org:{tickets['tenant']}"
        row_id = asyncio.run(create_ticket(server, tickets["token"], "Seen by Node"))
        event = json.loads(probe.stdout.readline())["event"]
        assert probe.wait(timeout=10) == 0
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    assert (event["org_id"], event["addon"], event["model"], event["table"], event["action"], event["id"]) == (
        tickets["tenant"], "helpdesk", "Tickets", "tickets", "created", row_id)


def test_sigterm_sends_a_close_frame_to_open_sockets(tickets, servers):
    (server,) = servers()

    async def body():
        ws = await subscribed_socket(server.ws_url, tickets["token"], ["tickets"])
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001 and ws.close_reason == "server shutting down"

    asyncio.run(body())
    assert server.process.wait(timeout=10) is not None


def test_unauthenticated_socket_gets_4401_with_reason_through_daphne(live):
    server = live

    async def body():
        ws = await ws_connect(f"{server.ws_url}?token=bogus")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401 and ws.close_reason == "Invalid token."

    asyncio.run(body())


def test_heartbeats_reap_a_peer_that_stopped_answering(tickets, live):
    """A client that completed the handshake and then went silent (no pong) is closed by
    the server's ping timeout (Daphne `--ping-interval/--ping-timeout`)."""
    server = live
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall((f"GET /api/ws?token={tickets['token']} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    received = b""
    while True:  # never answer: the server pings, then gives up and drops the connection
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    sock.close()
    assert b"\x89" in received  # the server's ping frames reached the silent peer
