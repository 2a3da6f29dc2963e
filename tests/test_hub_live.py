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
from django.contrib.auth import get_user_model
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
    "models": [
        {
            "key": "Tickets",
            "table": "tickets",
            "label": "Tickets",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "title", "type": "text", "not_null": True},
                {"name": "status", "type": "text", "not_null": True, "default": "open"},
            ],
        },
        {
            "key": "Project",
            "table": "projects",
            "label": "Projects",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "name", "type": "text", "not_null": True},
            ],
        },
    ],
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
    get_kernel().permissions.grant(
        user,
        [
            "helpdesk.tickets.read",
            "helpdesk.tickets.create",
            "helpdesk.projects.read",
            "helpdesk.projects.create",
        ],
    )
    yield {"tenant": str(tenant), "token": token_for(user), "user": user}
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
    status, body = await asyncio.to_thread(
        server.request, "POST", "/api/dynamic/tickets", token, {"title": title}
    )
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
        assert (
            payload["org_id"],
            payload["addon"],
            payload["model"],
            payload["table"],
            payload["action"],
            payload["id"],
        ) == (tickets["tenant"], "helpdesk", "Tickets", "tickets", "created", row_id)
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
    """`npm ci` of tests/node (the official clients from the npm registry) when missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js/npm are not installed")
    if not (NODE_DIR / "node_modules" / "@asteby" / "metacore-runtime-react").is_dir():
        subprocess.run([npm, "ci"], cwd=NODE_DIR, check=True, capture_output=True, timeout=300)
    return node


def test_official_realtime_client_receives_a_data_event(tickets, live, node_client):
    server = live
    env = {
        **os.environ,
        "METACORE_HTTP": server.url,
        "METACORE_TOKEN": tickets["token"],
        "METACORE_MODEL": "Tickets",
    }
    probe = subprocess.Popen(
        [
            node_client,
            "--experimental-websocket",
            "--no-warnings",
            "--import",
            "./register-extensionless.mjs",
            "realtime_probe.mjs",
        ],
        cwd=NODE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    assert (
        event["org_id"],
        event["addon"],
        event["model"],
        event["table"],
        event["action"],
        event["id"],
    ) == (tickets["tenant"], "helpdesk", "Tickets", "tickets", "created", row_id)


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
    sock.sendall(
        (
            f"GET /api/ws?token={tickets['token']} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
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


def test_official_client_gets_events_for_every_rest_spelling_and_its_hot_swap_fires(
    tickets, live, node_client
):
    """Each spelling the REST API accepts for `helpdesk`'s Project/projects, subscribed through
    `createRealtimeClient`, gets the event of a row created through REST (the SDK's matcher
    decides); disabling the addon fires the SDK's manifest hot-swap (`payload.addonKey`)."""
    server = live
    spellings = ["Project", "projects", "helpdesk.Project", "helpdesk.projects"]
    for spelling in spellings:
        assert server.request("GET", f"/api/dynamic/{spelling}", tickets["token"])[0] == 200
    admin = get_user_model().objects.create_superuser("operator", password="pw")
    env = {
        **os.environ,
        "METACORE_HTTP": server.url,
        "METACORE_TOKEN": tickets["token"],
        "METACORE_MODELS": ",".join(spellings),
    }
    probe = subprocess.Popen(
        [
            node_client,
            "--experimental-websocket",
            "--no-warnings",
            "--import",
            "./register-extensionless.mjs",
            "realtime_spellings_probe.mjs",
        ],
        cwd=NODE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(probe.stdout.readline() or '{"error": "no output"}')
        assert sorted(ready.get("ready", [])) == sorted(s.lower() for s in spellings), (
            ready,
            probe.stderr.read() if probe.poll() is not None else "",
        )
        status, body = server.request(
            "POST", "/api/dynamic/helpdesk.projects", tickets["token"], {"name": "Apollo"}
        )
        assert status == 201, body
        lines = [json.loads(probe.stdout.readline()) for _ in spellings]
        assert (
            server.request("POST", "/api/metacore/installations/helpdesk/disable", token_for(admin))[0] == 200
        )
        swap = json.loads(probe.stdout.readline())
        assert probe.wait(timeout=10) == 0
        assert (
            server.request("POST", "/api/metacore/installations/helpdesk/enable", token_for(admin))[0] == 200
        )
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    events = {line["spelling"]: line["event"] for line in lines}
    assert set(events) == set(spellings)
    assert {e["id"] for e in events.values()} == {body["data"]["id"]}
    assert all(e["action"] == "created" and e["addon"] == "helpdesk" for e in events.values())
    assert swap["swap"]["addonKey"] == "helpdesk" and swap["swap"]["operation"] == "disable"
    assert swap["action"] == "rekey" and swap["removed"] == -1  # nothing cached: the SDK clears all
    assert swap["versions"] == {"helpdesk": swap["swap"]["newHash"].removeprefix("sha256:")[:8]}


def test_open_sockets_lose_events_and_close_when_access_is_taken_away(tickets, live):
    """Revoke a reader's permission, delete another's token, deactivate a third: within
    HUB_RECHECK_SECONDS (3 s in the sandbox) their open sockets get no more DATA_EVENTs and
    are closed with 4403 / 4401."""
    from rest_framework.authtoken.models import Token

    server = live
    users = [make_user(name, tickets["tenant"]) for name in ("revoked", "tokenless", "inactive")]
    for user in users:
        get_kernel().permissions.grant(user, ["helpdesk.tickets.read"])
    revoked, tokenless, inactive = users
    tokens = [token_for(user) for user in users]

    async def body():
        sockets = [await subscribed_socket(server.ws_url, token, ["tickets"]) for token in tokens]
        await create_ticket(server, tickets["token"], "Seen by all")
        for ws in sockets:
            assert (await next_data_event(ws))["type"] == "DATA_EVENT"

        def take_away():
            get_kernel().permissions.revoke(revoked, ["helpdesk.tickets.read"])
            Token.objects.filter(user=tokenless).delete()
            get_user_model().objects.filter(pk=inactive.pk).update(is_active=False)

        await asyncio.to_thread(take_away)
        await asyncio.sleep(3.2)
        await create_ticket(server, tickets["token"], "Seen by nobody of them")
        closes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert frame["type"] != "DATA_EVENT", frame
            closes.append((ws.close_code, ws.close_reason))
        return closes

    closes = asyncio.run(body())
    assert closes == [
        (4403, 'permission revoked: missing "helpdesk.tickets.read"'),
        (4401, "Invalid token."),
        (4401, "User inactive or deleted."),
    ]


def test_foreign_origin_is_refused_through_daphne(tickets, live):
    server = live

    async def body():
        host = f"127.0.0.1:{server.port}"
        ws = await ws_connect(f"{server.ws_url}?token={tickets['token']}", origin="https://evil.example")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4403 and "origin" in ws.close_reason
        same = await ws_connect(f"{server.ws_url}?token={tickets['token']}", origin=f"http://{host}")
        await same.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(same.recv(), 5))["type"] == "pong"
        await same.close()

    asyncio.run(body())
