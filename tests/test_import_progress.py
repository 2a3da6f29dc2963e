"""Import progress over the hub, end to end on a real Daphne server: a multi-thousand-row
import sends IMPORT_PROGRESS frames to the importing user's WebSocket while it validates and
writes, and a final frame on completion or failure."""

import asyncio
import io
import json
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect

from metacore.context import CallContext
from metacore.kernel import get_kernel, reset_kernel
from metacore.store.transfer import PROGRESS_EVERY, read_csv
from tests.hubkit import make_user, new_tenant, token_for
from tests.livekit import Daphne
from tests.store_support import ledger_manifest

pytestmark = pytest.mark.django_db(transaction=True)

LEDGER = ledger_manifest(
    {"name": "title", "type": "text", "not_null": True},
    {"name": "amount", "type": "int", "not_null": True},
)


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        (server,) = Daphne.start()
    yield server
    server.terminate()


@pytest.fixture
def ledger(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(LEDGER))
    reset_kernel()
    get_kernel().installer.install(tmp_path)
    tenant = new_tenant()
    user = make_user("bookkeeper", tenant)
    get_kernel().permissions.grant(user, ["ledger.entries.read", "ledger.entries.create"])
    yield {"tenant": str(tenant), "token": token_for(user), "user": user}
    get_kernel().installer.uninstall("ledger", drop_data=True)
    reset_kernel()


def csv_of(rows, bad_row=None):
    lines = ["title,amount"] + [f"entry {i},{'many' if i == bad_row else i}" for i in range(1, rows + 1)]
    return ("\r\n".join(lines) + "\r\n").encode()


def post_csv(server, token, body, request_id):
    request = urllib.request.Request(
        f"{server.url}/api/dynamic/ledger.entries/import",
        data=body,
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "text/csv", "X-Request-ID": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            status, answer = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, json.loads(exc.read())
    return status, answer, time.monotonic()


async def import_watching_progress(server, token, body, request_id):
    """POST the import while one socket of the same user collects IMPORT_PROGRESS frames
    (with their arrival times) until the final one."""
    async with ws_connect(f"{server.ws_url}?token={token}") as ws:
        posting = asyncio.create_task(asyncio.to_thread(post_csv, server, token, body, request_id))
        frames = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if frame["type"] != "IMPORT_PROGRESS":
                continue
            frames.append((time.monotonic(), frame["payload"]))
            if frame["payload"]["stage"] in ("done", "validated", "failed"):
                break
        status, answer, answered_at = await posting
    return status, answer, answered_at, frames


def test_a_long_import_reports_progress_while_it_runs_and_once_done(ledger, live):
    rows = 3000
    status, answer, answered_at, frames = asyncio.run(
        import_watching_progress(live, ledger["token"], csv_of(rows), "import-ok-1")
    )
    assert status == 201 and answer["data"]["created"] == rows, answer
    payloads = [p for _, p in frames]
    assert {p["request_id"] for p in payloads} == {"import-ok-1"}
    assert {p["model"] for p in payloads} == {"ledger.Entries"}
    validating = [p["rows"] for p in payloads if p["stage"] == "validating"]
    writing = [p["written"] for p in payloads if p["stage"] == "writing"]
    assert validating == list(range(PROGRESS_EVERY, rows + 1, PROGRESS_EVERY))
    assert writing == list(range(PROGRESS_EVERY, rows + 1, PROGRESS_EVERY))
    assert payloads[-1] == {
        "model": "ledger.Entries",
        "stage": "done",
        "rows": rows,
        "written": rows,
        "failed": 0,
        "message": "",
        "request_id": "import-ok-1",
        "dry_run": False,
    }
    # Progress arrives while the import runs, not with its answer.
    assert frames[0][0] < answered_at


def test_a_failing_import_ends_with_a_failed_frame_naming_the_row(ledger, live):
    status, answer, _, frames = asyncio.run(
        import_watching_progress(live, ledger["token"], csv_of(1200, bad_row=1100), "import-bad-1")
    )
    assert status == 422 and answer["data"]["created"] == 0
    stages = [p["stage"] for _, p in frames]
    assert stages == ["validating", "validating", "failed"]
    final = frames[-1][1]
    assert final["failed"] == 1 and final["written"] == 0 and final["rows"] == 1200
    assert final["message"].startswith("row 1100 (line 1101): amount:")


def test_an_import_stopped_by_an_error_still_reports_its_end(ledger):
    """No server needed: the service calls `progress` itself (the API turns it into frames)."""
    seen = []
    broken = csv_of(PROGRESS_EVERY + 10) + b"entry x,\xff\xfe\r\n"  # not UTF-8 near the end
    ctx = CallContext.for_user(ledger["user"])
    with pytest.raises(Exception, match="not a readable UTF-8 CSV"):
        get_kernel().transfer.import_rows(
            ctx, "ledger.entries", read_csv(io.BytesIO(broken)), write=True, progress=seen.append
        )
    assert [p.stage for p in seen] == ["validating", "failed"]
    assert "UTF-8" in seen[-1].message and seen[-1].written == 0
