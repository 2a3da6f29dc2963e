"""Outbound webhooks on events: recorded, signed, retried with backoff, dead-lettered,
replayed; nothing sent for a rolled-back write; a worker killed mid-delivery loses nothing."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import livekit
import pytest
import webhook_receiver
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient
from webhook_receiver import Receiver

from metacore.integrations.deliveries import backoff_seconds, matches
from metacore.integrations.models import WebhookDelivery, WebhookSubscription
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, TenantMembership

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)
receiver = webhook_receiver.receiver  # the local receiver fixture


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.METACORE = {
        **settings.METACORE,
        "HTTP_RESOLVER": "webhook_receiver.resolve",
        "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"],
        "WEBHOOK_RETRY_BASE_S": 0.05,
    }
    return settings


@pytest.fixture
def helpdesk():
    get_kernel().installer.install(EXAMPLE)
    yield Installation.objects.get(key="helpdesk")
    get_kernel().installer.uninstall("helpdesk", drop_data=True)


def member(name, *, staff=False, org=None):
    user = get_user_model().objects.create_user(
        username=name, password="pw", is_staff=staff, is_superuser=staff
    )
    TenantMembership.objects.create(user=user, organization_id=org or uuid.uuid4())
    api = APIClient()
    api.force_authenticate(user)
    api.org = str(TenantMembership.objects.get(user=user).organization_id)
    return api


def subscribe(client, url, events, **extra):
    response = client.post("/api/metacore/webhooks", {"url": url, "events": events, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def run_tasks():
    call_command("db_worker", batch=True, startup_delay=False, interval=0, verbosity=0)


def test_event_patterns_and_backoff():
    assert matches("order.*", "order.created") and matches("*", "x") and matches("a.b", "a.b")
    assert not matches("order.*", "orders.created") and not matches("order.*", "order")
    for attempt, nominal in ((1, 0.05), (2, 0.2), (3, 0.8)):
        assert nominal / 2 <= backoff_seconds(attempt) <= nominal


def test_subscription_api_validates_and_hides_the_secret(receiver):
    client = member("owner")
    bad = client.post("/api/metacore/webhooks", {"url": "ftp://x", "events": []}, format="json")
    assert bad.status_code == 400 and {"url", "events"} <= set(bad.json()["errors"])
    created = subscribe(client, f"{receiver.url}/hook", ["helpdesk.*"])
    assert len(created["secret"]) == 64
    listed = client.get("/api/metacore/webhooks").json()["data"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    assert member("stranger").get("/api/metacore/webhooks").json()["data"] == []
    assert client.delete(f"/api/metacore/webhooks/{created['id']}").status_code == 204
    assert client.delete(f"/api/metacore/webhooks/{created['id']}").status_code == 404


def test_data_and_addon_events_are_delivered_signed_and_rolled_back_writes_send_nothing(helpdesk, receiver):
    client = member("agent", staff=True)
    sub = subscribe(client, f"{receiver.url}/hook?src=metacore", ["helpdesk.*"])
    receiver.secret = sub["secret"]
    subscribe(member("other-org"), f"{receiver.url}/other", ["*"])  # another organization's: never called
    ticket = client.post("/api/dynamic/tickets", {"title": "Printer on fire"}, format="json").json()["data"]
    declined = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/escalate", {"resolution": "x"}, format="json"
    )
    assert declined.status_code == 422  # its event_emit rolled back with it
    resolved = client.post(
        f"/api/dynamic/tickets/{ticket['id']}/action/resolve", {"resolution": "y"}, format="json"
    )
    assert resolved.status_code == 200
    events = sorted(WebhookDelivery.objects.values_list("event", flat=True))
    assert events == ["helpdesk.ticket_resolved", "helpdesk.tickets.created"]
    assert DBTaskResult.objects.count() == 2  # enqueued through the Tasks API
    run_tasks()
    requests = receiver.wait_for(2)
    assert {r["headers"]["X-Metacore-Event"] for r in requests} == set(events)
    assert all(r["verified"] is True and r["path"] == "/hook?src=metacore" for r in requests)
    assert all(r["headers"]["X-Metacore-Tenant"] == client.org for r in requests)
    created = next(r for r in requests if r["headers"]["X-Metacore-Event"] == "helpdesk.tickets.created")
    assert created["json"]["data"]["id"] == ticket["id"] and created["json"]["type"] == "data"
    assert set(WebhookDelivery.objects.values_list("status", "attempts", "response_status")) == {
        ("delivered", 1, 200)
    }
    assert WebhookSubscription.objects.get(id=sub["id"]).success_count == 2
    assert not AuditRecord.objects.filter(kind="webhook.delivery").exists()  # delivered: recorded on the row


def test_receiver_down_is_retried_then_dead_lettered_and_replayable(receiver):
    client = member("ops", staff=True)
    port = receiver.port
    subscribe(client, f"{receiver.url}/hook", ["orders.*"], retry_max=3)
    receiver.close()  # down: connection refused
    [delivery] = get_kernel().deliveries.publish(
        "orders.created", client.org, {"event": "orders.created", "id": 1}
    )
    deadline = time.monotonic() + 30
    while WebhookDelivery.objects.get(id=delivery.id).status != "dead":
        assert time.monotonic() < deadline, "never dead-lettered"
        run_tasks()
        time.sleep(0.05)
    dead = WebhookDelivery.objects.get(id=delivery.id)
    assert dead.attempts == 3 and dead.response_status is None and "failed" in dead.error
    assert WebhookSubscription.objects.get().failure_count == 3
    assert AuditRecord.objects.get(kind="webhook.delivery").details["status"] == "dead"
    listed = client.get("/api/metacore/webhooks/deliveries", {"status": "dead"}).json()["data"]
    assert [d["id"] for d in listed] == [str(delivery.id)] and listed[0]["attempts"] == 3
    assert client.get("/api/metacore/webhooks/deliveries", {"status": "nope"}).status_code == 400
    assert (
        member("not-ops").post(f"/api/metacore/webhooks/deliveries/{delivery.id}/replay").status_code == 403
    )

    back = Receiver(port=port)  # the receiver is up again
    try:
        replay = client.post(f"/api/metacore/webhooks/deliveries/{delivery.id}/replay")
        assert replay.status_code == 202, replay.content
        assert client.post(f"/api/metacore/webhooks/deliveries/{delivery.id}/replay").status_code == 409
        run_tasks()
        back.wait_for(1)
        replayed = WebhookDelivery.objects.get(id=delivery.id)
        assert (replayed.status, replayed.attempts, replayed.response_status) == ("delivered", 1, 200)
        assert replayed.latency_ms > 0
    finally:
        back.close()


def start_worker(tmp_path, name):
    env = {
        **os.environ,
        "DATABASE_URL": livekit.test_database_url(),
        "DJANGO_SETTINGS_MODULE": "worker_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
        "METACORE_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / f"{name}.log", "w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "metacore_worker",
            "--tick",
            "0.3",
            "--interval",
            "0.1",
            "--no-startup-delay",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


def test_a_worker_killed_mid_delivery_loses_nothing(receiver, tmp_path):
    client = member("ops", staff=True)
    subscribe(client, f"{receiver.url}/slow", ["orders.*"], timeout_sec=2)
    receiver.routes["/slow"] = (200, {"ok": True}, 30)  # the first attempt hangs
    first, first_log = start_worker(tmp_path, "first")
    try:
        [delivery] = get_kernel().deliveries.publish("orders.paid", client.org, {"event": "orders.paid"})
        receiver.wait_for(1, timeout=60)
        first.send_signal(signal.SIGKILL)  # mid-delivery
        first.wait(10)
    finally:
        first.kill()
    in_flight = WebhookDelivery.objects.get(id=delivery.id)
    assert (in_flight.status, in_flight.attempts) == ("sending", 1)
    receiver.routes["/slow"] = (200, {"ok": True}, 0)
    second, second_log = start_worker(tmp_path, "second")
    try:
        deadline = time.monotonic() + 60
        while WebhookDelivery.objects.get(id=delivery.id).status != "delivered":
            assert time.monotonic() < deadline and second.poll() is None, (
                second_log.seek(0),
                second_log.read(),
            )
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(10)
        except subprocess.TimeoutExpired:
            second.kill()
    done = WebhookDelivery.objects.get(id=delivery.id)
    assert done.attempts == 1  # the killed attempt is not counted
    assert len(receiver.requests) == 2
    assert {r["headers"]["X-Metacore-Delivery"] for r in receiver.requests} == {str(delivery.id)}


def test_an_addons_manifest_subscriptions_follow_its_organizations(helpdesk, receiver, tmp_path):
    """An addon subscribing to events in its manifest gets those of the organizations that
    have it enabled, and no others."""
    listener = tmp_path / "listener"
    listener.mkdir()
    manifest = {
        "key": "listener",
        "name": "Listener",
        "version": "1.0.0",
        "kernel": ">=3.0.0 <4.0.0",
        "backend": {"runtime": "webhook", "url": receiver.url},
        "capabilities": [{"kind": "event:subscribe", "target": "helpdesk.*", "reason": "to listen"}],
        "subscriptions": [{"event": "helpdesk.*", "handler": {"type": "webhook", "url": "/created"}}],
    }
    (listener / "manifest.json").write_text(json.dumps(manifest))
    a, b = member("in-a", staff=True), member("in-b", staff=True)
    get_kernel().installer.install(listener, organization=a.org)
    try:
        for client in (a, b):
            response = client.post("/api/dynamic/tickets", {"title": f"for {client.org}"}, format="json")
            assert response.status_code == 201, response.content
        delivered = WebhookDelivery.objects.filter(addon_key="listener")
        assert list(delivered.values_list("tenant", "event", "url")) == [
            (a.org, "helpdesk.tickets.created", f"{receiver.url}/created")
        ]
    finally:
        get_kernel().installer.uninstall("listener", organization=a.org)
