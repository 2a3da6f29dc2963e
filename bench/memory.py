"""Memory of a served worker: RSS of one granian worker (as `make run` serves HTTP: `make web`,
one worker here) after a warm-up, then every 2,000 requests up to 10,000 requests more,
across 50 installed models (five addons of ten small models each), with a
token-authenticated client.

The requests cycle through the models and four shapes: a list page, one row by id, a
filtered list and a create (which audits, and publishes to the hub and the deliveries).
Goal (issue 18): no growth after warm-up; a per-request cache, a registry rebuild or a
queue nobody drains shows up here as a steady climb.
"""

import http.client
import json
import os
import subprocess
import uuid
from pathlib import Path

from bench._support import database_url, install_manifest, items_manifest, setup_django, vendor
from bench.peers import _free_port, _stop, _wait_until_ready

ADDONS = 5
MODELS_PER_ADDON = 10
ROWS_PER_MODEL = 20
WARMUP = int(os.environ.get("BENCH_MEMORY_WARMUP", 2_000))
REQUESTS = int(os.environ.get("BENCH_MEMORY_REQUESTS", 10_000))
SAMPLE_EVERY = 2_000
ROOT = Path(__file__).resolve().parent.parent
EXTRA_COLUMNS = [
    {"name": "status", "type": "varchar", "size": 20, "not_null": True, "default": "open"},
    {"name": "priority", "type": "integer", "not_null": True, "default": 0},
    {"name": "created_at", "type": "timestamptz"},
    {"name": "updated_at", "type": "timestamptz"},
]


def _manifest(n):
    """Addon `benchmem<n>` with ten tables `t0` .. `t9`, each the items shape."""
    manifest = items_manifest(f"benchmem{n}", f"Bench memory {n}", EXTRA_COLUMNS)
    (items,) = manifest["models"]
    manifest["models"] = [
        {**items, "key": f"T{i}", "table": f"t{i}", "label": f"Table {i}"} for i in range(MODELS_PER_ADDON)
    ]
    return manifest


def _data():
    """The fifty models installed and seeded; a member of the rows' tenant with a token and
    read and create permissions on each. Returns (token, [(model ref, one row id)])."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from metacore.models import TenantMembership

    kernel = None
    for n in range(ADDONS):
        kernel = install_manifest(_manifest(n))
    user = get_user_model().objects.create_user(f"bench-memory-{uuid.uuid4().hex[:8]}")
    org = TenantMembership.objects.create(user=user).organization_id
    refs = [f"benchmem{n}.t{i}" for n in range(ADDONS) for i in range(MODELS_PER_ADDON)]
    kernel.permissions.grant(user, [f"{ref}.{action}" for ref in refs for action in ("read", "create")])
    targets = []
    for ref in refs:
        model = kernel.registry.resolve(ref).model_class
        rows = [
            model(id=uuid.uuid4(), organization_id=org, title=f"row {i}", status=("open", "closed")[i % 2])
            for i in range(ROWS_PER_MODEL)
        ]
        model.objects.bulk_create(rows)
        targets.append((ref, str(rows[0].id)))
    return Token.objects.create(user=user).key, targets


def _only_child(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one child of {pid}, found {children}")
    return int(children[0])


def _worker_pid(make):
    """make runs granian's main process, which only supervises; the worker serves."""
    return _only_child(_only_child(make))


def _rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class _Client:
    """One keep-alive connection sending the cycle of requests."""

    def __init__(self, port, token, targets):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.targets = targets
        self.sent = 0

    def send(self, count):
        for _ in range(count):
            ref, row_id = self.targets[self.sent % len(self.targets)]
            shape = (self.sent // len(self.targets)) % 4
            base = f"/api/dynamic/{ref}"
            method, path, body = (
                ("GET", f"{base}?per_page=20", None),
                ("GET", f"{base}/{row_id}", None),
                ("GET", f"{base}?per_page=20&f_status=eq:open", None),
                ("POST", base, json.dumps({"title": "created", "status": "open", "priority": 1})),
            )[shape]
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
            content = response.read()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {content[:300]!r}")
            self.sent += 1


def main():
    setup_django()
    try:
        _measure(*_data())
    finally:
        _uninstall()


def _measure(token, targets):
    port = _free_port()
    log = ROOT / "var" / f"bench-memory-{vendor()}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "sandbox_project.settings",
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "web", "HOST=127.0.0.1", f"PORT={port}", "WEB_CONCURRENCY=1"],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ref, _ = targets[0]
        _wait_until_ready(
            f"http://127.0.0.1:{port}/api/dynamic/{ref}?per_page=1",
            {"Authorization": f"Token {token}"},
            process,
            log,
        )
        worker = _worker_pid(process.pid)
        client = _Client(port, token, targets)
        print(
            f"memory bench on {vendor()}: one granian worker, {len(targets)} models, {WARMUP:,} requests"
            f" of warm-up then {REQUESTS:,}; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        client.send(WARMUP)
        warm = _rss_mb(worker)
        print(f"  RSS after warm-up ({client.sent:,} requests): {warm:7.1f} MB", flush=True)
        rss = warm
        while client.sent < WARMUP + REQUESTS:
            client.send(min(SAMPLE_EVERY, WARMUP + REQUESTS - client.sent))
            rss = _rss_mb(worker)
            print(f"  RSS after {client.sent - WARMUP:>6,} more requests:    {rss:7.1f} MB", flush=True)
        if _worker_pid(process.pid) != worker:
            raise RuntimeError("the worker was replaced during the run")
        growth = rss - warm
        print(
            f"  growth after warm-up: {growth:+.1f} MB over {REQUESTS:,} requests"
            f" ({growth * 1024 / REQUESTS * 1000:+.0f} KB per 1,000; goal: none);"
            f" load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    finally:
        _stop(process)


def _uninstall():
    """Leave the shared bench database as found for the other bench modules."""
    from metacore.kernel import get_kernel
    from metacore.models import Installation

    for n in range(ADDONS):
        if Installation.objects.filter(key=f"benchmem{n}").exists():
            get_kernel().installer.uninstall(f"benchmem{n}", drop_data=True)


if __name__ == "__main__":
    main()
