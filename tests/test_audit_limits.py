"""No audit record is lost to its size, and a sink that fails is loud: logged at ERROR and
counted in the `metacore.audit.sink.failures` metric. Real WebSocket, real sandbox, real
database sink, on SQLite and PostgreSQL (where a too-long value used to fail the insert)."""

import json
import logging

import pytest
import sandbox_guests as guests
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from conftest import is_postgres
from django.db import transaction
from store_support import ORG_A

from metacore.audit.pipe import LIMITS, TRUNCATED, AuditPipe
from metacore.audit.sinks import DatabaseSink
from metacore.context import CallContext
from metacore.errors import CapabilityDenied
from metacore.kernel import get_kernel
from metacore.models import AuditRecord
from tests.hubkit import communicator, make_user, receive_json, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_limits_are_the_database_columns():
    for name, limit in LIMITS.items():
        field = AuditRecord._meta.get_field(name)
        assert field.max_length in (None, limit), name


def assert_truncated(record, field, length):
    value = getattr(record, field)
    assert len(value) == LIMITS[field] and value.endswith(TRUNCATED)
    assert record.details["truncated"][field] == length


def test_websocket_subscribe_to_a_1000_character_model_is_recorded():
    user = make_user("alice", ORG_A)
    model = "m" * 1000

    async def scenario():
        token = await database_sync_to_async(token_for)(user)
        comm = communicator(f"/api/ws?token={token}")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"type": "SUBSCRIBE", "models": [model]}))
        frame = await receive_json(comm)
        await comm.disconnect()
        return frame

    frame = async_to_sync(scenario)()
    assert frame["type"] in ("DATA_SUBSCRIBED", "ERROR")
    (record,) = AuditRecord.objects.filter(kind="hub.subscribe", decision="deny")
    assert_truncated(record, "target", 1000)
    assert record.target.startswith("m" * 100)


@pytest.fixture
def probe(tmp_path):
    guests.install_probe_addon(tmp_path, "longprobe")
    yield
    get_kernel().installer.uninstall("longprobe", drop_data=True)


def test_http_fetch_to_a_long_url_is_denied_and_recorded_inside_a_transaction(probe):
    url = "https://not-granted.example.com/" + "a" * 1200
    with transaction.atomic():  # on PostgreSQL the denial is written on its own connection
        raw = get_kernel().sandbox.call_raw(
            "longprobe",
            "call_http_fetch",
            "\0".join([url, "GET", ""]).encode(),
            CallContext(tenant=str(ORG_A)),
        )
    assert json.loads(raw)["error"] == "forbidden"
    (record,) = AuditRecord.objects.filter(kind="capability.check", addon="longprobe", decision="deny")
    assert_truncated(record, "target", len("http:fetch ") + len(url))
    assert record.details["resource"] == url  # details keep up to DETAIL_LIMIT characters


def test_a_denial_with_a_long_target_is_recorded(probe):
    """On PostgreSQL the denial survives the rollback of the denied operation (it is written
    on its own connection); SQLite has one writer, so there it commits with the caller."""
    target = "x" * 400
    rollback = is_postgres()
    try:
        with transaction.atomic():
            with pytest.raises(CapabilityDenied):
                get_kernel().enforcer.check(
                    "longprobe", "event:emit", target, context=CallContext.system("a" * 500)
                )
            if rollback:
                raise RuntimeError("the denied operation rolls back")
    except RuntimeError:
        pass
    (record,) = AuditRecord.objects.filter(kind="capability.check", addon="longprobe")
    assert_truncated(record, "target", len("event:emit ") + 400)
    assert_truncated(record, "actor", 500)


def test_a_failing_database_sink_is_logged_and_counted(caplog, otel):
    pipe = AuditPipe([DatabaseSink()])
    first = pipe.record("addon.install", addon="shop")
    with caplog.at_level(logging.ERROR, logger="metacore.audit"):
        pipe.record("addon.install", addon="shop", id=first.id)  # the same event id: a real insert failure
    assert pipe.failures == 1 and AuditRecord.objects.filter(event_id=first.id).count() == 1
    (log_record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (
        "audit sink DatabaseSink failed for addon.install" in log_record.getMessage() and log_record.exc_info
    )
    (point,) = otel.metric_points("metacore.audit.sink.failures")
    assert point.value == 1 and point.attributes["metacore.sink"] == "DatabaseSink"
