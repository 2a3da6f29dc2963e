"""Webhook deliveries through the task queue, against same-run baselines.

1. Throughput: N deliveries published (rows + tasks through django-tasks' database backend),
   then run by one in-process `db_worker`, to a local receiver; against a bare `urllib` POST
   loop of N requests to the same receiver. Ratio = queued deliveries/s ÷ bare POSTs/s
   (what recording, claiming, signing, the SSRF guard and the queue cost per delivery).
2. Enqueue cost on a write: `store.create` of a row whose event matches an organization's
   webhook (a delivery row and a task row written after the commit) against the same create
   with no matching webhook. Ratio = with ÷ without (goal <= 1.5).

Both are bound by commits: a delivery is four (its row and task; the task's claim; the
attempt's lease; its outcome), a bare POST none; on a disk with slow fsync (SQLite without
WAL, a loaded PostgreSQL) that, not the HTTP, is what the first ratio measures.
"""

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench._support import install_manifest, items_manifest, paired, setup_django, vendor

ADDON = "benchhooks"
DELIVERIES = 300
MANIFEST = items_manifest(ADDON, "Bench webhooks")


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _bare_posts(url, n):
    body = json.dumps({"event": "bench.created", "data": {"id": 1}}).encode()
    start = time.perf_counter()
    for _ in range(n):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    return n / (time.perf_counter() - start)


def _queued(org, n):
    from django.core.management import call_command

    from metacore.integrations.models import WebhookDelivery
    from metacore.kernel import get_kernel

    start = time.perf_counter()
    for i in range(n):
        get_kernel().deliveries.publish("bench.created", org, {"event": "bench.created", "data": {"id": i}})
    call_command("db_worker", batch=True, startup_delay=False, interval=0, verbosity=0)
    rate = n / (time.perf_counter() - start)
    delivered = WebhookDelivery.objects.filter(status="delivered").count()
    if delivered != n:
        raise AssertionError(f"{delivered} of {n} delivered")
    WebhookDelivery.objects.all().delete()
    return rate


def main():
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from metacore.conf import metacore_settings
    from metacore.context import CallContext
    from metacore.integrations.models import WebhookSubscription
    from metacore.kernel import get_kernel
    from metacore.models import TenantMembership

    saved_age = connection.settings_dict["CONN_MAX_AGE"]
    # Persistent connections, as a production worker runs them (conn_max_age=0 would
    # reconnect twice per task: the worker closes old connections around each one).
    connection.settings_dict["CONN_MAX_AGE"] = None
    connection.close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    saved = settings.METACORE
    settings.METACORE = {**saved, "HTTP_ALLOWED_NETWORKS": ["127.0.0.1/32"]}  # the local receiver, explicitly
    metacore_settings.reload()
    install_manifest(MANIFEST)
    user = User.objects.create_superuser("bench-hooks", "bench@example.com", None)
    org = TenantMembership.objects.create(user=user).organization_id
    try:
        sub = WebhookSubscription.objects.create(
            organization_id=org, url=url, events=["bench.*"], secret="s" * 64
        )
        bare = _bare_posts(url, DELIVERIES)
        queued = _queued(org, DELIVERIES)
        ctx = CallContext.for_user(user, tenant=str(org))
        store = get_kernel().store

        def create():
            store.create(ctx, f"{ADDON}.items", {"title": "x"})

        sub.events = [f"{ADDON}.*"]
        sub.save()
        with_webhook, _ = paired(create, lambda: None, number=50, repeat=5)
        sub.events = ["nothing.*"]
        sub.save()
        without_webhook, _ = paired(create, lambda: None, number=50, repeat=5)
        print(f"webhooks bench on {vendor()}")
        print(
            f"  deliveries/s through the queue  {queued:9.1f}   bare urllib POST/s {bare:9.1f}   "
            f"ratio {queued / bare:5.2f}"
        )
        print(
            f"  create with a matching webhook  {with_webhook * 1e3:7.2f} ms   without {without_webhook * 1e3:7.2f} ms   "
            f"ratio {with_webhook / without_webhook:5.2f} (goal <= 1.5)"
        )
        print(f"  ({DELIVERIES} deliveries, one in-process worker, persistent connections)")
    finally:
        DBTaskResult.objects.all().delete()
        get_kernel().installer.uninstall(ADDON, drop_data=True)
        user.delete()
        settings.METACORE = saved
        metacore_settings.reload()
        connection.settings_dict["CONN_MAX_AGE"] = saved_age
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
