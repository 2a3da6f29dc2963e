"""OpenTelemetry for metacore: spans and metric instruments every subsystem shares.

Subsystems call the module functions (`span`, `count_request`, `count_capability_decision`,
`record_sandbox_call`, `hub_connection`, `record_hub_fanout`, `count_audit_sink_failure`,
`emit_log`). They go to one `Telemetry` object built from the global OpenTelemetry
providers, or from the providers passed to `configure()` (tests pass SDK providers with
in-memory exporters/readers).

When no SDK provider is configured every helper returns at once (`enabled` is False), so
telemetry that is off costs one attribute read. `setup_from_env()` (called from
`MetacoreConfig.ready()`) builds SDK providers from the standard `OTEL_*` environment
variables and turns on `opentelemetry-instrumentation-django` for HTTP spans.
"""

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

from opentelemetry import _logs, metrics, trace

log = logging.getLogger("metacore.telemetry")
SCOPE = "metacore"


def _is_sdk(provider):
    """True for a real (SDK or vendor) provider, False for the API's no-op and proxy defaults."""
    return not type(provider).__name__.lstrip("_").startswith(("NoOp", "Proxy"))


def _attributes(attrs):
    """`addon=...` becomes `metacore.addon`; None values are dropped; dotted keys are kept."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if not isinstance(value, (str, bool, int, float)):
            value = str(value)
        out[key if "." in key else f"metacore.{key}"] = value
    return out


class Telemetry:
    def __init__(self, tracer_provider=None, meter_provider=None, logger_provider=None):
        tracer_provider = tracer_provider or trace.get_tracer_provider()
        meter_provider = meter_provider or metrics.get_meter_provider()
        logger_provider = logger_provider or _logs.get_logger_provider()
        self.tracing = _is_sdk(tracer_provider)
        self.metering = _is_sdk(meter_provider)
        self.logging = _is_sdk(logger_provider)
        self.enabled = self.tracing or self.metering or self.logging
        self.tracer = tracer_provider.get_tracer(SCOPE)
        self.logger = logger_provider.get_logger(SCOPE)
        meter = meter_provider.get_meter(SCOPE)
        self.requests = meter.create_counter(
            "metacore.requests",
            unit="{request}",
            description="API requests by addon, model, action and status",
        )
        self.capability_decisions = meter.create_counter(
            "metacore.capability.denials",
            unit="{check}",
            description="capability checks that denied (enforce) or would have denied (shadow)",
        )
        self.sandbox_duration = meter.create_histogram(
            "metacore.sandbox.call.duration", unit="ms", description="wasm call wall time"
        )
        self.sandbox_fuel = meter.create_histogram(
            "metacore.sandbox.call.fuel", unit="{instruction}", description="wasm fuel consumed per call"
        )
        self.hub_connections = meter.create_up_down_counter(
            "metacore.hub.connections", unit="{connection}", description="open hub WebSocket connections"
        )
        self.hub_fanout = meter.create_histogram(
            "metacore.hub.fanout", unit="{connection}", description="connections one published event reached"
        )
        self.audit_sink_failures = meter.create_counter(
            "metacore.audit.sink.failures", unit="{failure}", description="audit events a sink failed to take"
        )


_telemetry = None


def get_telemetry() -> Telemetry:
    global _telemetry
    if _telemetry is None:
        _telemetry = Telemetry()
    return _telemetry


def configure(tracer_provider=None, meter_provider=None, logger_provider=None) -> Telemetry:
    """Rebuild the instruments on these providers (None: the global ones)."""
    global _telemetry
    _telemetry = Telemetry(tracer_provider, meter_provider, logger_provider)
    return _telemetry


def span(name: str, **attrs: object) -> AbstractContextManager[trace.Span | None]:
    """Context manager: a span `name` with `metacore.*` attributes, current while it runs.
    An exception escaping it is recorded and marks the span as an error."""
    t = get_telemetry()
    if not t.tracing:
        return nullcontext()
    return t.tracer.start_as_current_span(name, attributes=_attributes(attrs))


def set_attributes(**attrs: object) -> None:
    """Add attributes to the current span (e.g. a decision known only at the end)."""
    if get_telemetry().tracing:
        trace.get_current_span().set_attributes(_attributes(attrs))


def current_ids() -> tuple[str, str]:
    """`(trace_id, span_id)` as hex of the current span, or empty strings."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def count_request(*, addon: str, model: str, action: str, status: int) -> None:
    t = get_telemetry()
    if t.metering:
        t.requests.add(1, _attributes(dict(addon=addon, model=model, action=action, status=int(status))))


def count_capability_decision(*, addon: str, kind: str, decision: str) -> None:
    """Count a deny or would-deny (allows are not counted: they are the normal case)."""
    t = get_telemetry()
    if t.metering:
        t.capability_decisions.add(1, _attributes(dict(addon=addon, capability=kind, decision=decision)))


def record_sandbox_call(
    *, addon: str, function: str, duration_ms: float, fuel: int | None = None, outcome: str = "ok"
) -> None:
    t = get_telemetry()
    if t.metering:
        attrs = _attributes(dict(addon=addon, function=function, outcome=outcome))
        t.sandbox_duration.record(duration_ms, attrs)
        if fuel is not None:
            t.sandbox_fuel.record(fuel, attrs)


def hub_connection(delta: int, **attrs: object) -> None:
    """+1 when a hub connection opens, -1 when it closes."""
    t = get_telemetry()
    if t.metering:
        t.hub_connections.add(delta, _attributes(attrs))


def record_hub_fanout(size: int, **attrs: object) -> None:
    t = get_telemetry()
    if t.metering:
        t.hub_fanout.record(size, _attributes(attrs))


def count_audit_sink_failure(sink: str) -> None:
    t = get_telemetry()
    if t.metering:
        t.audit_sink_failures.add(1, {"metacore.sink": sink})


def emit_log(
    body: str, *, event_name: str, attributes: Mapping[str, object], severity_text: str = "INFO"
) -> None:
    """An OpenTelemetry log record (correlated with the current span)."""
    t = get_telemetry()
    if t.logging:
        t.logger.emit(
            body=body, event_name=event_name, attributes=_attributes(attributes), severity_text=severity_text
        )


# --- Prometheus ---------------------------------------------------------------------------

_prometheus_registry = None


def prometheus_registry():
    """The registry `/metrics` renders: fed by the OTel Prometheus exporter's reader, so the
    scrape shows the same OTel metrics as the OTLP/console exporters (one pipeline)."""
    global _prometheus_registry
    if _prometheus_registry is None:
        from prometheus_client import CollectorRegistry

        _prometheus_registry = CollectorRegistry(auto_describe=True)
    return _prometheus_registry


def prometheus_reader():
    """A metric reader to put in the host's MeterProvider (`OTEL_METRICS_EXPORTER=prometheus`
    does it for hosts configured from the environment)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    return PrometheusMetricReader(registry=prometheus_registry())


# --- configuration from the standard environment variables ---------------------------------


def _env_list(name):
    return [v.strip().lower() for v in os.environ.get(name, "").split(",") if v.strip()]


def _exporter(kind, signal):
    """An exporter for `kind` (console | otlp) and `signal` (traces | metrics | logs)."""
    if kind == "console":
        if signal == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        if signal == "metrics":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            return ConsoleMetricExporter()
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter()
    if kind == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        package = "grpc" if protocol == "grpc" else "http"
        module, cls = {
            "traces": ("trace_exporter", "OTLPSpanExporter"),
            "metrics": ("metric_exporter", "OTLPMetricExporter"),
            "logs": ("_log_exporter", "OTLPLogExporter"),
        }[signal]
        try:
            mod = __import__(f"opentelemetry.exporter.otlp.proto.{package}.{module}", fromlist=[cls])
        except ImportError:
            log.warning("OTEL %s exporter 'otlp' needs opentelemetry-exporter-otlp-proto-%s", signal, package)
            return None
        return getattr(mod, cls)()
    log.warning("unsupported OTEL %s exporter %r (use console, otlp or none)", signal, kind)
    return None


def setup_from_env(environ=None):
    """Configure SDK providers and Django HTTP spans from `OTEL_*` variables; returns whether
    anything was turned on. Nothing happens when `OTEL_SDK_DISABLED=true`, when no exporter
    is named, or when the host already installed SDK providers (then only HTTP spans are
    added). Reads OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER (comma
    lists of console/otlp/prometheus/none; prometheus feeds `/metrics`), OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (through the
    SDK's Resource), OTEL_EXPORTER_OTLP_* (through the OTLP exporters)."""
    global _telemetry
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    wanted = {
        signal: [k for k in _env_list(f"OTEL_{signal.upper()}_EXPORTER") if k != "none"]
        for signal in ("traces", "metrics", "logs")
    }
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        for signal in ("traces", "metrics"):
            if f"OTEL_{signal.upper()}_EXPORTER" not in env:
                wanted[signal] = ["otlp"]
    if not any(wanted.values()) and not _is_sdk(trace.get_tracer_provider()):
        return False

    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if wanted["traces"] and not _is_sdk(trace.get_tracer_provider()):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        for kind in wanted["traces"]:
            exporter = _exporter(kind, "traces")
            if exporter:
                provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    if wanted["metrics"] and not _is_sdk(metrics.get_meter_provider()):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers = [
            prometheus_reader() if kind == "prometheus" else PeriodicExportingMetricReader(exporter)
            for kind in wanted["metrics"]
            if kind == "prometheus" or (exporter := _exporter(kind, "metrics"))
        ]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    if wanted["logs"] and not _is_sdk(_logs.get_logger_provider()):
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        provider = LoggerProvider(resource=resource)
        for kind in wanted["logs"]:
            exporter = _exporter(kind, "logs")
            if exporter:
                provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        _logs.set_logger_provider(provider)
    instrument_django()
    _telemetry = None
    return True


def instrument_django(tracer_provider=None, meter_provider=None):
    """HTTP server spans and metrics through opentelemetry-instrumentation-django (idempotent)."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return instrumentor
