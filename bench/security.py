"""Capability checks and the cost of auditing/tracing a request, against same-run baselines.

1. Capability check: the policy match on a warm cache (median microseconds; goal < 5 us),
   next to a plain dict lookup; and the full `Enforcer.check()`, which adds the one short
   query that makes a mode flip from another process apply at once.
2. A dynamic list request (page of 50) with the audit pipe (log + database + OpenTelemetry
   sinks, reads audited) and OpenTelemetry (SDK tracer + meter, Django instrumentation,
   spans exported in batches to a discarding exporter) on, as a ratio against both off
   (goal < 1.15); once with the default `AUDIT_READS=False`, once with reads audited (a
   database row per list). Batches of each configuration are interleaved so drift hits
   all alike.
"""

import statistics
import sys
import time
import uuid

from bench._support import install_manifest, items_manifest, per_call, setup_django, vendor

ADDON = "benchsec"
ROWS = 1000
MANIFEST = items_manifest(
    ADDON,
    "Bench security",
    [
        {"name": "priority", "type": "integer", "not_null": True, "default": 0},
        {"name": "created_at", "type": "timestamptz"},
    ],
    capabilities=[
        {"kind": "db:read", "target": "users"},
        {"kind": "event:emit", "target": "benchsec.*"},
        {"kind": "event:subscribe", "target": "*.created"},
        {"kind": "http:fetch", "target": "*.stripe.com"},
        {"kind": "http:fetch", "target": "https://api.slack.com/*"},
    ],
)
CHECKS = [
    ("db:write", "benchsec.items"),
    ("event:emit", "benchsec.item.created"),
    ("event:subscribe", "orders.created"),
    ("http:fetch", "https://api.slack.com/api/chat.postMessage"),
]


def _capability_bench():
    from metacore.kernel import get_kernel

    enforcer = get_kernel().enforcer
    enforcer.check(ADDON, "db:read", "users")  # warm the policy cache
    policy = enforcer._policies[ADDON][1]
    table = {(kind, target): True for kind, target in CHECKS}
    from django.db import connection

    def select_one():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    round_trip = per_call(select_one, number=500)
    rows = []
    for kind, target in CHECKS:
        warm = per_call(lambda: policy.allows(kind, target), number=20000)
        cold = per_call(lambda: policy.match(kind, target), number=5000)
        lookup = per_call(lambda: table.get((kind, target)), number=20000)
        full = per_call(lambda: enforcer.check(ADDON, kind, target), number=500)
        rows.append((f"{kind} {target}"[:48], warm, cold, lookup, full))
    print(
        f"capability check on {vendor()}: warm policy match (goal < 5 us) vs a dict lookup; uncached match;"
        " full check() with its per-check state query"
    )
    print(f"{'check':48} {'warm us':>8} {'dict us':>8} {'ratio':>6} {'cold us':>8} {'check() us':>11}")
    for name, warm, cold, lookup, full in rows:
        print(
            f"{name:48} {warm * 1e6:8.2f} {lookup * 1e6:8.2f} {warm / lookup:6.1f} {cold * 1e6:8.2f}"
            f" {full * 1e6:11.1f}"
        )
    print(f"(one `SELECT 1` round trip on this database, same run: {round_trip * 1e6:.1f} us)")
    median = statistics.median(r[1] for r in rows)
    print(
        f"median warm match: {median * 1e6:.2f} us ({'meets' if median < 5e-6 else 'MISSES'} the 5 us goal)"
    )


class _Discard:
    """A span/log exporter that drops everything (export cost without I/O)."""

    def export(self, batch):
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=None):
        return True


def _otel_on():
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from metacore import telemetry

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(InMemoryLogRecordExporter()))
    telemetry.configure(tracer_provider, meter_provider, logger_provider)
    instrumentor = telemetry.instrument_django(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return instrumentor, (tracer_provider, meter_provider, logger_provider)


def _request_bench():
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.utils import timezone
    from rest_framework.test import APIClient

    from metacore import telemetry
    from metacore.kernel import get_kernel, reset_kernel
    from metacore.models import TenantMembership

    model = get_kernel().registry.resolve(f"{ADDON}.items").model_class
    user = User.objects.create_superuser("benchsec", "b@example.com", "x")
    org = TenantMembership.objects.create(user=user).organization_id
    now = timezone.now()
    model.objects.bulk_create(
        [
            model(id=uuid.uuid4(), organization_id=org, title=f"item {i}", priority=i % 5, created_at=now)
            for i in range(ROWS)
        ],
        batch_size=500,
    )
    url = f"/api/dynamic/{ADDON}.items?per_page=50&page=3"
    base_settings = dict(settings.METACORE)
    sinks = [
        "metacore.audit.sinks.LogSink",
        "metacore.audit.sinks.DatabaseSink",
        "metacore.audit.sinks.OpenTelemetrySink",
    ]

    def switch(on, reads=False):
        settings.METACORE = {**base_settings, "AUDIT_SINKS": sinks if on else [], "AUDIT_READS": reads}
        reset_kernel()
        if on:
            telemetry.configure(*providers)
        else:
            telemetry.configure()

    def client_call():
        """A client whose handler loads the middleware now (with or without OTel's)."""
        client = APIClient()
        client.force_authenticate(user)

        def call():
            response = client.get(url)
            if response.status_code != 200:
                raise AssertionError(f"GET {url}: {response.status_code} {response.content[:300]!r}")

        call()
        return call

    instrumentor, providers = _otel_on()
    switch(True)
    on_call = client_call()
    instrumentor.uninstrument()
    switch(False)
    off_call = client_call()

    def timed(call, number=60):
        start = time.perf_counter()
        for _ in range(number):
            call()
        return (time.perf_counter() - start) / number

    configs = {
        "both off": (False, False, off_call),
        "audit+OTel": (True, False, on_call),
        "audit+OTel, reads audited": (True, True, on_call),
    }
    samples = {name: [] for name in configs}
    for _ in range(15):
        for name, (on, reads, call) in configs.items():
            switch(on, reads)
            samples[name].append(timed(call, number=20))
    settings.METACORE = base_settings
    telemetry.configure()
    reset_kernel()
    for provider in providers:
        provider.shutdown()
    off, off_min = statistics.median(samples["both off"]), min(samples["both off"])
    print(
        f"dynamic list request (50 of {ROWS}) on {vendor()}: audit pipe (log+db+otel sinks) and OpenTelemetry"
        " (SDK, Django instrumentation) vs both off; goal < 1.15"
    )
    print(f"{'configuration':28} {'median us':>10} {'ratio':>6} {'best us':>8} {'ratio':>6}")
    for name, values in samples.items():
        median, best = statistics.median(values), min(values)
        print(f"{name:28} {median * 1e6:10.0f} {median / off:6.2f} {best * 1e6:8.0f} {best / off_min:6.2f}")


def main():
    setup_django()
    from django.test.utils import override_settings

    install_manifest(MANIFEST)
    with override_settings(DEBUG=False):  # no query log: measure what production runs
        _capability_bench()
        _request_bench()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
