"""Hub protocol through Channels' WebsocketCommunicator on the real ASGI application:
authentication close codes, subscriptions and permissions, tenant isolation, coalescing,
slow clients, control frames."""

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.db import transaction

from metacore import events
from metacore.hub.consumer import HubConsumer
from metacore.kernel import get_kernel, reset_kernel
from metacore.models import AuditRecord
from tests.hubkit import (
    close_of,
    communicator,
    make_user,
    new_tenant,
    receive_json,
    register_addon,
    token_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_KEYS = {"org_id", "addon", "model", "table", "action", "id", "actor_id", "at", "fields"}


@pytest.fixture(autouse=True)
def hub_env(settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
    settings.METACORE = {**settings.METACORE, "HUB_COALESCE_MS": 0}
    channel_layers.backends.clear()
    reset_kernel()
    yield
    channel_layers.backends.clear()
    reset_kernel()


@pytest.fixture
def org():
    """Two tenants; crm (Lead/leads, Deal/deals) and tickets (Ticket/tickets) registered."""
    register_addon(
        "crm", [("Lead", "leads"), ("Deal", "deals")], capabilities=[("event:subscribe", "lead.*")]
    )
    register_addon("tickets", [("Ticket", "tickets")])
    t1, t2 = new_tenant(), new_tenant()
    return {
        "t1": t1,
        "t2": t2,
        "alice": make_user("alice", t1, ["crm.leads.read", "crm.deals.read"]),
        "bob": make_user("bob", t2, ["crm.leads.read", "crm.deals.read", "tickets.tickets.read"]),
        "carol": make_user("carol", t1, ["crm.leads.read", "tickets.tickets.read"]),
    }


def event(tenant, action="updated", addon="crm", model="Lead", table="leads", row=None, fields=("name",)):
    return events.DataEvent(
        addon=addon,
        model=model,
        table=table,
        action=action,
        id=str(row or uuid.uuid4()),
        tenant=str(tenant),
        actor_id="7",
        fields=fields,
        before={"name": "old secret"},
        after={"name": "new secret"},
    )


def publish(ev):
    """What the store does: send `data_changed` once the write commits (sync code)."""
    with transaction.atomic():
        events.publish_on_commit(events.data_changed, ev)


async def connect(user, query=""):
    token = await database_sync_to_async(token_for)(user)
    comm = communicator(f"/api/ws?token={token}{query}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def subscribe(comm, models, kind="SUBSCRIBE"):
    await comm.send_to(text_data=json.dumps({"type": kind, "models": models}))
    frame = await receive_json(comm)
    assert frame["type"] == "DATA_SUBSCRIBED", frame
    return frame["payload"]


def run(coro):
    async_to_sync(coro)()


# -- authentication ----------------------------------------------------------------------------
def test_no_credentials_closes_4401_with_reason_before_any_frame():
    async def body():
        comm = communicator("/api/ws")
        assert (await comm.connect(timeout=5))[0]
        closed = await close_of(comm)
        assert closed["code"] == 4401 and closed["reason"] == "authentication required"

    run(body)


def test_bad_token_closes_4401(org):
    async def body():
        for path in ("/api/ws?token=nope", "/ws?token=nope"):
            comm = communicator(path)
            await comm.connect(timeout=5)
            closed = await close_of(comm)
            assert closed["code"] == 4401 and "token" in closed["reason"].lower()

    run(body)


def test_authorization_header_token_and_session_cookie_authenticate(org, client):
    token = token_for(org["alice"])
    client.force_login(org["carol"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def body():
        for headers in ([(b"authorization", f"Token {token}".encode())], [(b"cookie", cookie)]):
            comm = communicator("/ws", headers=headers)
            await comm.connect(timeout=5)
            await comm.send_to(text_data='{"type":"ping"}')
            assert (await receive_json(comm))["type"] == "pong"
            await comm.disconnect()

    run(body)


def test_socket_frames_skip_the_session_save_wrapper(org, client, monkeypatch):
    """Channels' session wrapper saves a session only on `http.response.start`: a socket's
    frames go straight to the server (through the wrapper they paid two lazy session reads
    each), and the session still authenticates the socket."""
    from channels.sessions import InstanceSessionWrapper

    wrapped = []
    original = InstanceSessionWrapper.send

    async def recording(self, message):
        wrapped.append(message["type"])
        return await original(self, message)

    monkeypatch.setattr(InstanceSessionWrapper, "send", recording)
    client.force_login(org["alice"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def body():
        comm = communicator("/api/ws", headers=[(b"cookie", cookie)])
        assert (await comm.connect(timeout=5))[0]
        await comm.send_to(text_data='{"type":"ping"}')
        assert (await receive_json(comm))["type"] == "pong"
        await comm.disconnect()

    run(body)
    assert wrapped == []


def test_channel_of_another_tenant_closes_4403(org):
    async def body():
        comm = await connect(org["alice"], f"&channel=org:{org['t2']}")
        assert (await close_of(comm))["code"] == 4403
        comm = await connect(org["alice"], f"&channel=user:{org['bob'].pk}")
        assert (await close_of(comm))["code"] == 4403
        comm = await connect(org["alice"], "&channel=mc.whatever")
        assert (await close_of(comm))["code"] == 4403
        ok = await connect(org["alice"], f"&channel=org:{org['t1']}")
        await ok.send_to(text_data='{"type":"ping"}')
        assert (await receive_json(ok))["type"] == "pong"
        await ok.disconnect()

    run(body)
    assert AuditRecord.objects.filter(kind="hub.connect", decision="deny").count() == 3


# -- subscriptions and data events -------------------------------------------------------------
def test_subscribe_acks_only_readable_models_and_audits_refusals(org):
    async def body():
        comm = await connect(org["alice"])
        ack = await subscribe(comm, ["LEADS", "crm.Deal", "Ticket", "nosuch"])
        assert ack["models"] == ["crm.deal", "leads"]
        refused = {r["model"]: r["reason"] for r in ack["refused"]}
        assert set(refused) == {"ticket", "nosuch"}
        assert 'missing "tickets.tickets.read"' in refused["ticket"]
        ack = await subscribe(comm, ["leads"], kind="UNSUBSCRIBE")
        assert ack["models"] == ["crm.deal"]
        await comm.disconnect()

    run(body)
    denied = AuditRecord.objects.filter(kind="hub.subscribe", decision="deny")
    assert {r.target for r in denied} == {"ticket", "nosuch"}
    assert all(r.actor == str(org["alice"].pk) and r.tenant == str(org["t1"]) for r in denied)


def test_a_grant_or_revocation_is_seen_by_the_next_subscribe_on_the_same_socket(org):
    """The socket keeps its user; each SUBSCRIBE loads it again, so grants made meanwhile
    (by another process, on another user object) count."""
    permissions = get_kernel().permissions

    async def body():
        comm = await connect(org["alice"])
        ack = await subscribe(comm, ["tickets"])
        assert ack["models"] == [] and ack["refused"][0]["model"] == "tickets"
        await database_sync_to_async(permissions.grant)(org["alice"], ["tickets.tickets.read"])
        assert (await subscribe(comm, ["tickets"]))["models"] == ["tickets"]
        await database_sync_to_async(permissions.revoke)(org["alice"], ["crm.deals.read"])
        ack = await subscribe(comm, ["deals"])
        assert ack["models"] == ["tickets"]  # what the socket is subscribed to
        assert 'missing "crm.deals.read"' in ack["refused"][0]["reason"]
        await comm.disconnect()

    run(body)


def test_data_event_frame_carries_identity_and_field_names_never_values(org):
    ev = event(org["t1"])

    async def body():
        comm = await connect(org["alice"])
        await subscribe(comm, ["lead"])
        await database_sync_to_async(publish)(ev)
        raw = await comm.receive_from(timeout=2)
        assert "secret" not in raw
        frame = json.loads(raw)
        assert frame["type"] == "DATA_EVENT"
        assert set(frame["payload"]) == FRAME_KEYS
        assert frame["payload"] == {
            "org_id": str(org["t1"]),
            "addon": "crm",
            "model": "Lead",
            "table": "leads",
            "action": "updated",
            "id": ev.id,
            "actor_id": "7",
            "at": ev.at,
            "fields": ["name"],
        }
        await comm.disconnect()

    run(body)


def test_publish_is_traced_and_its_fanout_size_measured(org, otel):
    async def body():
        first, second = await connect(org["alice"]), await connect(org["alice"])
        for comm in (first, second):
            await subscribe(comm, ["lead"])
        await database_sync_to_async(publish)(event(org["t1"]))
        for comm in (first, second):
            assert json.loads(await comm.receive_from(timeout=2))["type"] == "DATA_EVENT"
            await comm.disconnect()

    run(body)
    (publish_span,) = otel.spans("metacore.hub.publish")
    assert publish_span.attributes["metacore.addon"] == "crm"
    assert [p.sum for p in otel.metric_points("metacore.hub.fanout")] == [2]


def test_rolled_back_write_sends_nothing(org):
    def rolled_back():
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                events.publish_on_commit(events.data_changed, event(org["t1"]))
                raise RuntimeError("write failed")

    async def body():
        comm = await connect(org["alice"])
        await subscribe(comm, ["leads"])
        await database_sync_to_async(rolled_back)()
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(body)


def test_unsubscribed_and_unreadable_models_are_not_delivered(org):
    async def body():
        comm = await connect(org["alice"])
        await subscribe(comm, ["deals"])
        await database_sync_to_async(publish)(event(org["t1"]))  # leads: not subscribed
        await database_sync_to_async(publish)(
            event(org["t1"], addon="tickets", model="Ticket", table="tickets")
        )
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(body)


def test_star_subscription_delivers_only_readable_models_once(org):
    async def body():
        comm = await connect(org["carol"])  # reads leads and tickets, not deals
        ack = await subscribe(comm, ["*", "leads"])
        assert ack["models"] == ["leads", "*"]
        for ev in (
            event(org["t1"], model="Deal", table="deals"),
            event(org["t1"]),
            event(org["t1"], addon="tickets", model="Ticket", table="tickets"),
        ):
            await database_sync_to_async(publish)(ev)
        got = [(await receive_json(comm))["payload"]["table"] for _ in range(2)]
        assert sorted(got) == ["leads", "tickets"]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(body)


def test_no_client_receives_another_tenants_events_whatever_it_sends(org):
    """Bob (tenant 2) may read everything, subscribes by every spelling, to crafted group
    names and to alice's addon channel: tenant 1's events never reach him."""
    from metacore.hub import groups

    crafted = [
        "*",
        "leads",
        "crm.lead",
        groups.data_group(org["t1"], "crm", "leads"),
        groups.all_data_group(org["t1"]),
        f"{org['t1']}.leads",
        "../leads",
        "leads\x00",
        "org:" + str(org["t1"]),
    ]

    async def body():
        bob = await connect(org["bob"], f"&channel=org:{org['t2']}")
        await subscribe(bob, crafted)
        await bob.send_to(text_data=json.dumps({"type": "subscribe", "channel": "addon.crm.lead.created"}))
        assert (await receive_json(bob))["type"] == "subscribed"
        await bob.send_to(
            text_data=json.dumps({"type": "subscribe", "channel": f"addon.crm.{org['t1']}.lead.created"})
        )
        await receive_json(bob)
        alice = await connect(org["alice"])
        await subscribe(alice, ["leads"])
        await database_sync_to_async(publish)(event(org["t1"]))
        await database_sync_to_async(events.addon_event.send)(
            sender=events.AddonEvent, event=events.AddonEvent("crm", "lead.created", str(org["t1"]), {"n": 1})
        )
        assert (await receive_json(alice))["payload"]["org_id"] == str(org["t1"])
        assert await bob.receive_nothing(timeout=0.3)
        await database_sync_to_async(publish)(event(org["t2"]))
        assert (await receive_json(bob))["payload"]["org_id"] == str(org["t2"])
        await bob.disconnect()
        await alice.disconnect()

    run(body)


def test_shared_tables_reach_every_tenant_and_org_tables_need_a_tenant(org):
    register_addon("catalog", [("Product", "products")], org_scoped=False)
    drifter = make_user("drifter", None, ["crm.leads.read"])
    for user in (org["alice"], org["bob"]):
        user.user_permissions.add(Permission.objects.get(codename="catalog.products.read"))

    async def body():
        alice, bob = await connect(org["alice"]), await connect(org["bob"])
        for comm in (alice, bob):
            assert (await subscribe(comm, ["products"]))["models"] == ["products"]
        shared = events.DataEvent(
            addon="catalog",
            model="Product",
            table="products",
            action="created",
            id="p1",
            tenant=None,
            actor_id=None,
        )
        await database_sync_to_async(publish)(shared)
        for comm in (alice, bob):
            payload = (await receive_json(comm))["payload"]
            assert (payload["org_id"], payload["id"], payload["actor_id"]) == ("", "p1", "")
            await comm.disconnect()
        lone = await connect(drifter)
        ack = await subscribe(lone, ["leads"])
        assert ack["models"] == [] and "no organization" in ack["refused"][0]["reason"]
        await lone.disconnect()

    run(body)


# -- coalescing and slow clients ---------------------------------------------------------------
def test_events_of_one_row_within_the_window_are_coalesced(org, settings):
    settings.METACORE = {**settings.METACORE, "HUB_COALESCE_MS": 150}
    row, other = uuid.uuid4(), uuid.uuid4()

    def burst():
        publish(event(org["t1"], action="created", row=row, fields=()))
        for name in ("name", "stage", "name"):
            publish(event(org["t1"], row=row, fields=(name,)))
        publish(event(org["t1"], row=other))

    async def body():
        comm = await connect(org["alice"])
        await subscribe(comm, ["leads"])
        await database_sync_to_async(burst)()
        first, second = await receive_json(comm), await receive_json(comm)
        assert (first["payload"]["id"], first["payload"]["action"]) == (str(row), "created")
        assert "coalesced" not in first["payload"]
        assert second["payload"]["id"] == str(other)  # another row is not held back
        merged = await receive_json(comm, timeout=1)
        assert merged["payload"]["id"] == str(row) and merged["payload"]["action"] == "updated"
        assert merged["payload"]["coalesced"] == 2  # three updates in one frame: two extra
        assert merged["payload"]["fields"] == ["name", "stage"]
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run(body)


@pytest.fixture
def gated_transmit(monkeypatch):
    """A client socket that cannot take frames until the gate opens."""
    gate = {"open": None}
    original = HubConsumer.transmit

    async def transmit(self, text):
        if gate["open"] is None:
            gate["open"] = asyncio.Event()
        await gate["open"].wait()
        await original(self, text)

    monkeypatch.setattr(HubConsumer, "transmit", transmit)
    return gate


def test_slow_client_gets_dropped_notice_and_backlog_discarded(org, settings, gated_transmit):
    settings.METACORE = {**settings.METACORE, "HUB_MAX_BACKLOG": 5}
    rows = [uuid.uuid4() for _ in range(10)]

    async def body():
        comm = await connect(org["alice"])
        await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": ["leads"]}))
        await asyncio.sleep(0.1)  # the ack is in flight (gated)
        for row in rows[:9]:
            await database_sync_to_async(publish)(event(org["t1"], row=row))
        await asyncio.sleep(0.1)
        gated_transmit["open"].set()
        frames = [await receive_json(comm) for _ in range(5)]
        assert [f["type"] for f in frames] == [
            "DATA_SUBSCRIBED",
            "DATA_EVENTS_DROPPED",
            "DATA_EVENT",
            "DATA_EVENT",
            "DATA_EVENT",
        ]
        # ack in flight; 5 queued, the 6th overflowed: those 6 dropped, the last 3 kept.
        assert frames[1]["payload"] == {"dropped": 6, "models": ["lead"]}
        assert [f["payload"]["id"] for f in frames[2:]] == [str(r) for r in rows[6:9]]
        await database_sync_to_async(publish)(event(org["t1"], row=rows[9]))
        assert (await receive_json(comm))["payload"]["id"] == str(rows[9])
        await comm.disconnect()

    run(body)


def test_stuck_client_is_disconnected(org, settings, gated_transmit):
    settings.METACORE = {**settings.METACORE, "HUB_MAX_BACKLOG": 3}

    async def body():
        comm = await connect(org["alice"])
        await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": ["leads"]}))
        await asyncio.sleep(0.1)
        for _ in range(8):  # 3 queued + overflow (notice) + 2 more fill it + overflow again
            await database_sync_to_async(publish)(event(org["t1"]))
        closed = await close_of(comm)
        assert closed["code"] == 1013

    run(body)


# -- control frames, channels, notifications ---------------------------------------------------
def test_ping_errors_and_oversized_frames(org, settings):
    settings.METACORE = {**settings.METACORE, "HUB_MAX_FRAME_BYTES": 1024}

    async def body():
        comm = await connect(org["alice"])
        for text, code in (
            ("{not json", "bad_json"),
            ('{"type":"FLY"}', "unknown_type"),
            ("[1]", "bad_frame"),
            ('{"type":"SUBSCRIBE"}', "bad_frame"),
            ('{"type":"SUBSCRIBE","models":"leads"}', "bad_frame"),
            ('{"type":"subscribe","channel":"crm.x"}', "bad_channel"),
        ):
            await comm.send_to(text_data=text)
            frame = await receive_json(comm)
            assert frame["type"] == "error" and frame["payload"]["code"] == code, (text, frame)
        await comm.send_to(text_data='{"type":"ping","payload":{"t":1}}')
        assert await receive_json(comm) == {"type": "pong", "payload": {"t": 1}}
        await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 2000}))
        assert (await close_of(comm))["code"] == 1009

    run(body)


def test_addon_channel_is_gated_by_the_emitting_addons_event_subscribe(org):
    async def body():
        comm = await connect(org["alice"])
        await comm.send_to(
            text_data=json.dumps({"type": "subscribe", "channel": "addon.tickets.ticket.created"})
        )
        refused = await receive_json(comm)
        assert refused["type"] == "error" and refused["payload"]["code"] == "forbidden"
        await comm.send_to(text_data=json.dumps({"type": "subscribe", "channel": "addon.crm.lead.created"}))
        assert await receive_json(comm) == {
            "type": "subscribed",
            "payload": {"channel": "addon.crm.lead.created"},
        }
        for tenant in (org["t2"], org["t1"]):
            await database_sync_to_async(events.addon_event.send)(
                sender=events.AddonEvent,
                event=events.AddonEvent("crm", "lead.created", str(tenant), {"lead": "L1"}),
            )
        frame = await receive_json(comm)
        assert frame["type"] == "ADDON_EVENT" and frame["channel"] == "addon.crm.lead.created"
        assert frame["payload"]["org_id"] == str(org["t1"]) and frame["payload"]["data"] == {"lead": "L1"}
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        # Through the query string (createChannelClient's one-socket-per-channel style).
        denied = await connect(org["alice"], "&channel=addon.tickets.ticket.created")
        assert (await close_of(denied))["code"] == 4403

    run(body)
    assert AuditRecord.objects.filter(kind="capability.check", addon="tickets", decision="deny").exists()


def test_notifications_go_to_one_user_and_manifest_changes_to_everyone(org):
    async def body():
        alice, carol = await connect(org["alice"]), await connect(org["carol"])
        await database_sync_to_async(get_kernel().hub.notify)(org["alice"].pk, {"title": "hi"})
        assert await receive_json(alice) == {"type": "NOTIFICATION", "payload": {"title": "hi"}}
        assert await carol.receive_nothing(timeout=0.2)
        lifecycle = events.LifecycleEvent("crm", "upgrade", "1.1.0")
        await database_sync_to_async(events.addon_changed.send)(sender=events.LifecycleEvent, event=lifecycle)
        for comm in (alice, carol):
            frame = await receive_json(comm)
            assert frame["type"] == "ADDON_MANIFEST_CHANGED"
            assert frame["payload"] == {
                "addon": "crm",
                "operation": "upgrade",
                "version": "1.1.0",
                "at": lifecycle.at,
                "addonKey": "crm",
                "orgId": "",
                "newHash": "",
                "timestamp": lifecycle.at,
            }
            await comm.disconnect()

    run(body)


def test_realtime_info_tells_the_channel_and_url(org, client):
    client.force_login(org["alice"])
    response = client.get("/api/realtime/info")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["channels"] == [f"org:{org['t1']}", f"user:{org['alice'].pk}"]
    assert data["ws_url"] == "ws://testserver/api/ws"
    assert data["enabled"] is True and data["coalesce_ms"] == 0
    client.logout()
    assert client.get("/api/realtime/info").status_code in (401, 403)


def test_realtime_info_tells_the_hubs_own_url_when_set(org, client, settings):
    """`make run` serves the hub on its own port: clients are told where."""
    settings.METACORE = {**settings.METACORE, "HUB_WS_URL": "ws://127.0.0.1:8001/api/ws"}
    client.force_login(org["alice"])
    assert client.get("/api/realtime/info").json()["data"]["ws_url"] == "ws://127.0.0.1:8001/api/ws"


# -- origin, spellings, rechecks ---------------------------------------------------------------
@pytest.mark.parametrize(
    "origin, host, allowed_origins, allowed",
    [
        ("https://evil.example", "app.example", None, False),
        ("http://app.example", "app.example", None, True),
        ("http://app.example:8000", "app.example:8000", None, True),
        ("http://app.example:9999", "app.example:8000", None, False),
        ("https://evil.example", "app.example", ["https://evil.example"], True),
        ("https://app.example", "app.example", [".trusted.example"], False),
        (None, "app.example", None, True),  # no Origin: not a browser
    ],
)
def test_websocket_origin_is_checked(org, settings, origin, host, allowed_origins, allowed):
    """`ALLOWED_HOSTS = ["*"]` (the sandbox's) does not open the socket to every site."""
    settings.METACORE = {**settings.METACORE, "HUB_ALLOWED_ORIGINS": allowed_origins}
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    token = token_for(org["alice"])

    async def body():
        comm = communicator(f"/api/ws?token={token}", headers=headers)
        assert (await comm.connect(timeout=5))[0]
        if allowed:
            await comm.send_to(text_data='{"type":"ping"}')
            assert (await receive_json(comm))["type"] == "pong"
            await comm.disconnect()
        else:
            closed = await close_of(comm)
            assert closed["code"] == 4403 and "origin" in closed["reason"]

    run(body)


def test_every_rest_spelling_gets_a_frame_the_official_matcher_accepts(org):
    """`crm.leads` (addon.table) is not one of the names the official client matches on
    (model key, table, addon.model): that subscription gets the frame respelled."""
    ev = event(org["t1"])

    async def body():
        comm = await connect(org["alice"])
        await subscribe(comm, ["crm.leads"])
        await database_sync_to_async(publish)(ev)
        frame = await receive_json(comm)
        assert frame["payload"]["model"] == "crm.leads" and "table" not in frame["payload"]
        assert frame["payload"]["id"] == ev.id and frame["payload"]["addon"] == "crm"
        assert await comm.receive_nothing(timeout=0.2)
        await subscribe(comm, ["lead"])  # a matched spelling as well: both frames, one each
        await database_sync_to_async(publish)(ev)
        models = sorted([(await receive_json(comm))["payload"]["model"] for _ in range(2)])
        assert models == ["Lead", "crm.leads"]
        await comm.disconnect()

    run(body)


def test_open_socket_is_closed_when_its_user_loses_access(org, settings):
    settings.METACORE = {**settings.METACORE, "HUB_RECHECK_SECONDS": 0.2}
    from rest_framework.authtoken.models import Token

    def revoke_read():
        get_kernel().permissions.revoke(org["alice"], ["crm.leads.read"])

    def delete_token():
        Token.objects.filter(user=org["carol"]).delete()

    def deactivate():
        org["bob"].is_active = False
        org["bob"].save(update_fields=["is_active"])

    async def body():
        cases = [
            (org["alice"], org["t1"], revoke_read, 4403, 'missing "crm.leads.read"'),
            (org["carol"], org["t1"], delete_token, 4401, "token"),
            (org["bob"], org["t2"], deactivate, 4401, "inactive"),
        ]
        for user, tenant, take_away, code, reason in cases:
            comm = await connect(user)
            await subscribe(comm, ["leads"])
            await database_sync_to_async(publish)(event(tenant))
            assert (await receive_json(comm))["type"] == "DATA_EVENT"
            await database_sync_to_async(take_away)()
            await asyncio.sleep(0.3)
            await database_sync_to_async(publish)(event(tenant))
            closed = await close_of(comm)
            assert closed["code"] == code and reason in closed["reason"].lower(), closed

    run(body)
    assert AuditRecord.objects.filter(kind="hub.recheck", decision="deny").count() == 3


def test_session_socket_is_closed_after_logout(org, client, settings):
    settings.METACORE = {**settings.METACORE, "HUB_RECHECK_SECONDS": 0.2}
    client.force_login(org["alice"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def body():
        comm = communicator("/api/ws", headers=[(b"cookie", cookie)])
        assert (await comm.connect(timeout=5))[0]
        await subscribe(comm, ["leads"])
        await database_sync_to_async(client.logout)()
        await asyncio.sleep(0.3)
        await database_sync_to_async(publish)(event(org["t1"]))
        closed = await close_of(comm)
        assert (closed["code"], closed["reason"]) == (4401, "session ended")

    run(body)


def test_jwt_authenticates_a_socket_like_the_rest_api(org):
    """The SDK's frontends hold a JWT (simplejwt, in the sandbox's DRF classes) and open the
    socket with `?token=<jwt>`."""
    from rest_framework_simplejwt.tokens import AccessToken

    jwt = str(AccessToken.for_user(org["alice"]))

    async def body():
        comm = communicator(f"/api/ws?token={jwt}")
        assert (await comm.connect(timeout=5))[0]
        assert (await subscribe(comm, ["leads"]))["models"] == ["leads"]
        await comm.disconnect()
        forged = communicator(f"/api/ws?token={jwt[:-4]}AAAA")
        assert (await forged.connect(timeout=5))[0]
        assert (await close_of(forged))["code"] == 4401

    run(body)
