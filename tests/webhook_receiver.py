"""A real local HTTP receiver for outbound webhooks, verifying signatures with upstream's
algorithm (`security/hmac.go` `VerifyWithNonce`, written out here independently).

Tests reach it as `http://receiver.test:<port>/...`: `resolve` (METACORE['HTTP_RESOLVER'])
maps `receiver.test` to 127.0.0.1, and the tests allow 127.0.0.1/32 explicitly with
METACORE['HTTP_ALLOWED_NETWORKS'] (the guard's default refuses loopback).
"""

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HOST = "receiver.test"


def resolve(host, port, family=0, type=0, *args):
    if host.rstrip(".").lower() != HOST:
        raise socket.gaierror(f"{host}: unknown in tests")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def upstream_signature(secret: str, timestamp: str, method: str, path: str, nonce: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256(secret, "<ts>.<method>.<path>.<nonce>.<sha256 hex(body)>")."""
    message = f"{timestamp}.{method}.{path}.{nonce}.{hashlib.sha256(body).hexdigest()}"
    return "sha256=" + hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class Receiver:
    """Records every request; answers with `routes[path]` = (status, body or dict, delay s)."""

    def __init__(self, secret=None, port=0):
        self.secret = secret
        self.requests = []
        self.routes = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                record = {
                    "path": self.path,
                    "headers": headers,
                    "body": body,
                    "json": json.loads(body) if body else None,
                    "verified": receiver.verify(self.path, headers, body),
                }
                with receiver.lock:
                    receiver.requests.append(record)
                status, reply, delay = receiver.routes.get(
                    self.path.split("?")[0], (200, {"success": True}, 0)
                )
                if delay:
                    time.sleep(delay)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verify(self, path, headers, body):
        """Upstream's receiving side: signature over the path, 300 s window."""
        if not self.secret:
            return None
        ts, nonce, signature = (
            headers.get(h) for h in ("X-Metacore-Timestamp", "X-Metacore-Nonce", "X-Metacore-Signature")
        )
        if not (ts and nonce and signature) or abs(time.time() - int(ts)) > 300:
            return False
        return hmac.compare_digest(upstream_signature(self.secret, ts, "POST", path, nonce, body), signature)

    def wait_for(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} requests, expected {count}")
            time.sleep(0.02)
        return self.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    """A running Receiver (without a secret until the test sets one), closed afterwards."""
    server = Receiver()
    yield server
    server.close()
