"""Real servers for the end-to-end tests: Daphne processes of the sandbox project, and its HTTP
process as `make run` starts it, on free 127.0.0.1 ports, sharing the test database (and Redis
when asked)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("METACORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def test_database_url():
    """DATABASE_URL of the database pytest-django created, so a server process writes and
    reads the same rows as the test (SQLite: the file test database from the settings)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daphne:
    name = "daphne"
    stop_timeout = 10

    def __init__(self, redis=False, extra_args=(), log_dir=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/ws"
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "DJANGO_SETTINGS_MODULE": "sandbox_project.settings",
        }
        env.pop("REDIS_URL", None)
        if redis:
            env["REDIS_URL"] = REDIS_URL
        self.log = open((log_dir or ROOT / "var") / f"{self.name}-{self.port}.log", "w+")
        self.process = subprocess.Popen(
            self.command(extra_args),
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def command(self, extra_args):
        return [
            str(Path(sys.executable).with_name("daphne")),
            *("-b", "127.0.0.1", "-p", str(self.port)),
            *extra_args,
            "sandbox_project.asgi:application",
        ]

    @classmethod
    def start(cls, count=1, **kwargs):
        """`count` servers started together (startup dominates), returned once all answer."""
        servers = [cls(**kwargs) for _ in range(count)]
        for server in servers:
            server.wait_ready()
        return servers

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.output()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/realtime/info", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401/403: Django answers
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()[-3000:]

    def request(self, method, path, token, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def terminate(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Web(Daphne):
    """The HTTP process of `make run`, started as it starts it (`make web`: granian's WSGI
    workers over sandbox_project.wsgi) with this interpreter's venv. Make passes SIGTERM on
    to granian, which stops its workers."""

    name = "web"
    stop_timeout = 20  # granian kills a worker still stopping after 10 s (the Makefile's WEB)

    def command(self, extra_args):
        return [
            "make",
            "--no-print-directory",
            "web",
            f"VENV={Path(sys.executable).parent.parent}",
            *("HOST=127.0.0.1", f"PORT={self.port}"),
            *extra_args,  # make variables, e.g. WEB_CONCURRENCY=1
        ]
