"""Test seams: what a host's test suite (and metacore's) installs in place of production parts.

Kept out of the modules they stand in for, so production code carries no test code.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from metacore import telemetry
from metacore.audit.sinks import autonomous_denials


@contextmanager
def denials_in_test_transaction() -> Iterator[None]:
    """Keep audited denials in the caller's transaction (not on a connection of their own)
    inside this block: for a test wrapped in a transaction that is rolled back at its end
    (Django's `TestCase`, pytest-django's `db`), so the denials go with it and the next
    test starts without them. Tests of the autonomous write run without it, in a real
    transaction (`TransactionTestCase`, `transaction=True`)."""
    token = autonomous_denials.set(False)
    try:
        yield
    finally:
        autonomous_denials.reset(token)


class InMemoryTelemetry:
    """SDK providers with in-memory exporters, installed with `configure()`: what tests
    assert real spans, metrics and log records against. `close()` goes back to the globals."""

    def __init__(self):
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        telemetry.configure(self.tracer_provider, self.meter_provider, self.logger_provider)

    def spans(self, name=None):
        return [s for s in self.span_exporter.get_finished_spans() if name is None or s.name == name]

    def metric_points(self, name):
        data = self.metric_reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def log_records(self, event_name=None):
        records = [getattr(r, "log_record", r) for r in self.log_exporter.get_finished_logs()]
        return [r for r in records if event_name is None or r.event_name == event_name]

    def close(self):
        telemetry.configure()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()
