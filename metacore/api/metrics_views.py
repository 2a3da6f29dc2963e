"""`GET metrics`: the OpenTelemetry metrics in Prometheus' text format (upstream `metrics/`),
rendered from the OTel Prometheus exporter's registry (`metacore.telemetry`).

Not for anonymous callers by default: a staff user, or a scraper sending
`Authorization: Bearer <METACORE['METRICS_TOKEN']>`; `METACORE['METRICS_PUBLIC'] = True`
opens it to anyone (behind a network policy)."""

import hmac

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from metacore.api.errors import error_response
from metacore.conf import metacore_settings
from metacore.telemetry import prometheus_registry


def _scraper(request) -> bool:
    token = metacore_settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    return (
        bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), str(token))
    )


def metrics_view(request):
    if not metacore_settings.METRICS_PUBLIC and not _scraper(request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _plain(
                error_response("authentication required for metrics", 401), 'Bearer realm="metrics"'
            )
        if not user.is_staff:
            return _plain(error_response("permission denied: metrics are for staff users", 403))
    return HttpResponse(generate_latest(prometheus_registry()), content_type=CONTENT_TYPE_LATEST)


def _plain(response, challenge=None):
    """A DRF envelope Response rendered outside a DRF view."""
    from rest_framework.renderers import JSONRenderer

    out = HttpResponse(
        JSONRenderer().render(response.data), status=response.status_code, content_type="application/json"
    )
    if challenge:
        out["WWW-Authenticate"] = challenge
    return out
