"""The hub's server-side send API (`send_to_user`, `send_to_users`, `send_conditional`,
`connected_users`) and `event_emit` to users, over real sockets: Channels' communicator on
the ASGI application, and two Daphne processes sharing Redis."""

import asyncio
import datetime
import json
import re
import runpy
import signal
from pathlib import Path

import pytest
import sandbox_guests as guests
from channels.db import database_sync_to_async
from django.utils import timezone
from django.utils.module_loading import import_string

from metacore.context import CallContext
from metacore.hub.models import HubConnection
from metacore.hub.publisher import HubPublisher
from metacore.kernel import get_kernel, reset_kernel
from tests.hubkit import communicator, make_user, new_tenant, receive_json, token_for
from tests.livekit import REDIS_URL, Daphne

pytestmark = pytest.mark.django_db(transaction=True)
FRAME = {"type": "NOTIFICATION", "payload": {"title": "Build finished"}}


@pytest.fixture(autouse=True)
def hub_env(settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    reset_kernel()
    yield
    channel_layers.backends.clear()
    reset_kernel()


@pytest.fixture
def people():
    t1, t2 = new_tenant(), new_tenant()
    return {
        "t1": str(t1),
        "t2": str(t2),
        "alice": make_user("alice", t1),
        "carol": make_user("carol", t1),
        "bob": make_user("bob", t2),
    }


async def connect(user, query=""):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(f"/api/ws?token={token}{query}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


def hub():
    return get_kernel().hub


async def call(method, *args, **kwargs):
    return await database_sync_to_async(getattr(hub(), method), thread_sensitive=False)(*args, **kwargs)


def test_send_to_user_reaches_every_socket_of_that_user_and_no_other(people):
    async def body():
        alice1, alice2, bob = (
            await connect(people["alice"]),
            await connect(people["alice"]),
            await connect(people["bob"]),
        )
        await call("send_to_user", people["alice"].pk, FRAME)
        assert await receive_json(alice1) == FRAME and await receive_json(alice2) == FRAME
        assert await bob.receive_nothing(timeout=0.3)
        await call("send_to_users", [people["alice"].pk, str(people["bob"].pk), people["bob"].pk], FRAME)
        assert [await receive_json(c) for c in (alice1, alice2, bob)] == [FRAME] * 3
        assert await bob.receive_nothing(timeout=0.3)  # a repeated id is one recipient
        for comm in (alice1, alice2, bob):
            await comm.disconnect()

    asyncio.run(body())


def test_a_tenant_scoped_send_reaches_only_sockets_of_that_organization(people):
    async def body():
        alice, bob = await connect(people["alice"]), await connect(people["bob"])
        ids = [people["alice"].pk, people["bob"].pk]
        await call("send_to_users", ids, FRAME, tenant=people["t2"])
        assert await receive_json(bob) == FRAME
        assert await alice.receive_nothing(timeout=0.3)
        await call("send_to_users", ids, FRAME, tenant=people["t1"])
        assert await receive_json(alice) == FRAME
        assert await bob.receive_nothing(timeout=0.3)
        await alice.disconnect()
        await bob.disconnect()

    asyncio.run(body())


def test_connected_users_follow_sockets_and_conditional_send_picks_connections(people):
    alice, carol, bob = (str(people[n].pk) for n in ("alice", "carol", "bob"))

    async def body():
        assert await call("connected_users") == []
        plain = await connect(people["alice"])
        on_channel = await connect(people["alice"], f"&channel=user:{alice}")
        other = await connect(people["bob"])
        assert await call("connected_users") == sorted([alice, bob])
        assert await call("connected_users", tenant=people["t1"]) == [alice]
        sent = await call("send_conditional", FRAME, lambda c: c.channel.startswith("user:"))
        assert sent == 1 and await receive_json(on_channel) == FRAME
        assert await plain.receive_nothing(timeout=0.3) and await other.receive_nothing(timeout=0.1)
        sent = await call("send_conditional", FRAME, lambda c: True, tenant=people["t2"])
        assert sent == 1 and await receive_json(other) == FRAME
        assert await plain.receive_nothing(timeout=0.2)
        await on_channel.disconnect()
        assert await call("connected_users") == sorted([alice, bob])
        await plain.disconnect()
        await other.disconnect()
        assert await call("connected_users") == []
        assert carol not in await call("connected_users")

    asyncio.run(body())


def test_presence_of_a_process_that_died_expires(people):
    """A row nobody refreshes (its process was killed) stops counting at `expires_at` and is
    deleted by the next heartbeat of any process."""
    from metacore.hub import presence

    now = timezone.now()
    HubConnection.objects.create(
        id="dead",
        user_id="42",
        tenant=people["t1"],
        connected_at=now,
        expires_at=now - datetime.timedelta(seconds=1),
    )
    HubConnection.objects.create(
        id="live",
        user_id="43",
        tenant=people["t1"],
        connected_at=now,
        expires_at=now + datetime.timedelta(seconds=60),
    )
    assert hub().connected_users() == ["43"]
    presence.refresh([])
    assert list(HubConnection.objects.values_list("id", flat=True)) == ["live"]


def test_frames_must_be_objects_with_a_type(people):
    for frame in ({"payload": 1}, {"type": ""}, "NOTIFICATION", None):
        with pytest.raises(ValueError):
            hub().send_to_user(people["alice"].pk, frame)


@pytest.fixture
def notifier(tmp_path):
    guests.install_probe_addon(
        tmp_path,
        "probe",
        capabilities=[{"kind": "event:notify", "target": "probe.*", "reason": "tell the assignee"}],
    )
    yield
    get_kernel().installer.uninstall("probe", drop_data=True)


def emit(name, payload, tenant):
    raw = get_kernel().sandbox.call_raw(
        "probe", "call_event_emit", f"{name}\0{json.dumps(payload)}".encode(), CallContext(tenant=tenant)
    )
    return json.loads(raw)


def test_an_addon_emits_to_users_of_its_calls_organization_only(people, notifier):
    alice, bob = people["alice"].pk, people["bob"].pk

    async def body():
        alice_ws, bob_ws = await connect(people["alice"]), await connect(people["bob"])
        answer = await database_sync_to_async(emit)(
            "probe.assigned", {"$users": [alice, str(bob)], "ticket": 7}, people["t1"]
        )
        assert answer["success"] is True and answer["data"] == {"event": "probe.assigned", "users": 2}, answer
        frame = await receive_json(alice_ws)
        assert frame["type"] == "ADDON_EVENT" and frame["channel"] == "addon.probe.probe.assigned"
        assert frame["payload"]["data"] == {"ticket": 7} and frame["payload"]["org_id"] == people["t1"]
        assert await bob_ws.receive_nothing(timeout=0.3)  # bob is in another organization
        denied = await database_sync_to_async(emit)("vault.assigned", {"$users": [alice]}, people["t1"])
        assert denied["success"] is False and denied["error"]["code"] == "forbidden"
        for bad in ([], "x", [True], [{}]):
            invalid = await database_sync_to_async(emit)("probe.assigned", {"$users": bad}, people["t1"])
            assert invalid["error"]["code"] == "invalid_payload", bad
        assert await alice_ws.receive_nothing(timeout=0.3)
        await alice_ws.disconnect()
        await bob_ws.disconnect()

    asyncio.run(body())


def documented_redis_layers(redis_url):
    """`CHANNEL_LAYERS` as docs/realtime.md ("Scale-out with Redis") tells a host to write it."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "realtime.md").read_text()
    section = text.split("## Scale-out with Redis", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {"REDIS_URL": redis_url}
    exec(code, namespace)  # noqa: S102 (the guide's own snippet)
    return namespace["CHANNEL_LAYERS"]


def test_the_sandbox_uses_the_documented_redis_layer(monkeypatch):
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    sandbox = runpy.run_path(str(Path(__file__).resolve().parent.parent / "sandbox_project" / "settings.py"))
    assert sandbox["CHANNEL_LAYERS"] == documented_redis_layers(REDIS_URL)


def test_send_api_reaches_sockets_of_two_daphne_processes(people):
    """Sockets of one user on two servers sharing Redis: a host's send from a third process
    (its layer configured as docs/realtime.md says) reaches both, and connected_users sees
    them (and stops seeing them) from anywhere."""
    from websockets.asyncio.client import connect as ws_connect

    servers = Daphne.start(2, redis=True)
    layer = documented_redis_layers(REDIS_URL)["default"]
    publisher = HubPublisher(
        get_kernel().registry, channel_layer=import_string(layer["BACKEND"])(**layer["CONFIG"])
    )
    alice, bob = token_for(people["alice"]), token_for(people["bob"])
    users = database_sync_to_async(publisher.connected_users)
    try:

        async def body():
            a = await ws_connect(f"{servers[0].ws_url}?token={alice}")
            b = await ws_connect(f"{servers[1].ws_url}?token={alice}")
            other = await ws_connect(f"{servers[1].ws_url}?token={bob}")
            assert await users() == sorted([str(people["alice"].pk), str(people["bob"].pk)])
            await database_sync_to_async(publisher.send_to_user)(
                people["alice"].pk, FRAME, tenant=people["t1"]
            )
            assert json.loads(await asyncio.wait_for(a.recv(), 5)) == FRAME
            assert json.loads(await asyncio.wait_for(b.recv(), 5)) == FRAME
            sent = await database_sync_to_async(publisher.send_conditional)(
                FRAME, lambda c: c.tenant == people["t2"]
            )
            assert sent == 1 and json.loads(await asyncio.wait_for(other.recv(), 5)) == FRAME
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(a.recv(), 0.3)
            for ws in (a, b, other):
                await ws.close()
            deadline = asyncio.get_running_loop().time() + 5
            while await users() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert await users() == []

        asyncio.run(body())
    finally:
        for server in servers:
            server.process.send_signal(signal.SIGTERM)
        for server in servers:
            server.terminate()
