"""metacore.telemetry: spans and metric helpers on in-memory exporters; OTEL_* set-up."""

import json
import os
import subprocess
import sys

import pytest
from opentelemetry.trace import StatusCode

from metacore import telemetry


def test_span_attributes_nesting_and_errors(otel):
    with telemetry.span("metacore.install", addon="shop", version="1.0.0"):
        with telemetry.span("metacore.install.ddl", addon="shop", tables=3, **{"db.system": "sqlite"}):
            telemetry.set_attributes(decision="allow", skipped=None)
    with pytest.raises(ValueError):
        with telemetry.span("metacore.sandbox.call", addon="shop", function="Run"):
            raise ValueError("trap")
    (outer,), (inner,), (failed,) = (
        otel.spans(n) for n in ("metacore.install", "metacore.install.ddl", "metacore.sandbox.call")
    )
    assert dict(outer.attributes) == {"metacore.addon": "shop", "metacore.version": "1.0.0"}
    assert dict(inner.attributes) == {
        "metacore.addon": "shop",
        "metacore.tables": 3,
        "db.system": "sqlite",
        "metacore.decision": "allow",
    }
    assert inner.parent.span_id == outer.context.span_id
    assert failed.status.status_code is StatusCode.ERROR and failed.events[0].name == "exception"


def test_metric_helpers(otel):
    telemetry.count_request(addon="shop", model="Orders", action="list", status=200)
    telemetry.count_request(addon="shop", model="Orders", action="list", status=200)
    telemetry.count_request(addon="shop", model="Orders", action="create", status=400)
    telemetry.record_sandbox_call(addon="shop", function="Run", duration_ms=4.5, fuel=1200)
    telemetry.record_sandbox_call(addon="shop", function="Run", duration_ms=1.5, outcome="trap")
    telemetry.hub_connection(1)
    telemetry.hub_connection(1)
    telemetry.hub_connection(-1)
    telemetry.record_hub_fanout(12, addon="shop")
    telemetry.count_audit_sink_failure("LogSink")

    requests = {
        (p.attributes["metacore.action"], p.attributes["metacore.status"]): p.value
        for p in otel.metric_points("metacore.requests")
    }
    assert requests == {("list", 200): 2, ("create", 400): 1}
    durations = {
        p.attributes["metacore.outcome"]: (p.count, p.sum)
        for p in otel.metric_points("metacore.sandbox.call.duration")
    }
    assert durations == {"ok": (1, 4.5), "trap": (1, 1.5)}
    (fuel,) = otel.metric_points("metacore.sandbox.call.fuel")
    assert (fuel.count, fuel.sum) == (1, 1200)
    assert [p.value for p in otel.metric_points("metacore.hub.connections")] == [1]
    assert [(p.count, p.sum) for p in otel.metric_points("metacore.hub.fanout")] == [(1, 12)]
    assert [p.attributes["metacore.sink"] for p in otel.metric_points("metacore.audit.sink.failures")] == [
        "LogSink"
    ]


def _django_process(env_extra, code):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(env_extra, DJANGO_SETTINGS_MODULE="sandbox_project.settings")
    script = "import django, json\ndjango.setup()\nfrom metacore import telemetry\n" + code
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


REPORT = """
from django.conf import settings
with telemetry.span("metacore.probe", addon="shop"):
    pass
print(json.dumps({"enabled": telemetry.get_telemetry().enabled,
                  "django": any("opentelemetry" in m for m in settings.MIDDLEWARE)}))
from opentelemetry import trace
getattr(trace.get_tracer_provider(), "force_flush", lambda: None)()
"""


def test_configured_from_standard_environment_variables():
    out = _django_process({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "host-x"}, REPORT)
    state = json.loads(out.splitlines()[0])
    assert state == {"enabled": True, "django": True}
    assert '"name": "metacore.probe"' in out and '"service.name": "host-x"' in out


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
    ],
)
def test_off_unless_asked(env):
    from django.conf import settings

    assert telemetry.setup_from_env(env) is False
    assert telemetry.get_telemetry().enabled is False
    assert not any("opentelemetry" in m for m in settings.MIDDLEWARE)
