"""Hostile input against a real Daphne server (issue 12): a URL over Twisted's 16 KB line
limit gets a JSON 414 instead of a dropped connection, an oversized header line a 431, and
WebSocket frames nested 1,000 deep or carrying NaN get an error frame (valid JSON), not a
1011 close or an invalid echo."""

import asyncio
import json
import socket

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.hubkit import make_user, new_tenant, token_for
from tests.livekit import Daphne

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        (server,) = Daphne.start()
    yield server
    server.terminate()


def raw_request(server, head: bytes):
    """Send a raw HTTP request head; the parsed (status, JSON body) of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_text, _, body = data.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    assert b"application/json" in head_text, head_text
    return status, json.loads(body)


@pytest.mark.parametrize("length", [17_000, 100_000])
def test_a_url_over_16_kb_answers_a_json_414(live, length):
    status, body = raw_request(
        live, b"GET /api/dynamic/x?q=" + b"a" * length + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status == 414 and body["code"] == "uri_too_long" and body["success"] is False, body


def test_a_header_line_over_16_kb_answers_a_json_431(live):
    status, body = raw_request(
        live, b"GET /api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: " + b"b" * 17_000 + b"\r\n\r\n"
    )
    assert status == 431 and body["code"] == "headers_too_large", body


def test_a_url_just_under_the_limit_reaches_the_api(live):
    status, body = raw_request(
        live, b"GET /api/dynamic/x?q=" + b"a" * 15_000 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status == 401 and body["code"] == "not_authenticated", body


def test_websocket_frames_nested_deep_or_with_nan_get_error_frames(live):
    token = token_for(make_user("ws-user", new_tenant()))

    async def scenario():
        async with ws_connect(f"{live.ws_url}?token={token}") as ws:
            answers = []
            for frame in [
                '{"type": "ping", "payload": ' + "[" * 1000 + "]" * 1000 + "}",
                '{"type": "ping", "payload": NaN}',
                '{"type": "ping", "payload": {"n": Infinity}}',
                '{"type": "ping", "payload": {"ok": 1}}',
            ]:
                await ws.send(frame)
                while True:
                    text = await asyncio.wait_for(ws.recv(), 5)
                    answer = json.loads(text)  # every frame the server sends is valid JSON
                    if answer["type"] in ("error", "pong"):
                        answers.append(answer)
                        break
            return answers

    deep, nan, infinity, fine = asyncio.run(scenario())
    assert deep["type"] == "error" and "nested deeper" in deep["payload"]["message"], deep
    assert nan["type"] == "error" and infinity["type"] == "error", (nan, infinity)
    assert fine == {"type": "pong", "payload": {"ok": 1}}
