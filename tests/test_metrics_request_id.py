"""`/api/metrics` in Prometheus format from the OTel metrics (the OTel Prometheus exporter's
reader in the meter provider), closed to anonymous callers by default; `X-Request-ID` echoed."""

import pytest
from django.contrib.auth.models import User
from opentelemetry.sdk.metrics import MeterProvider
from rest_framework.test import APIClient

from metacore import telemetry

pytestmark = pytest.mark.django_db


@pytest.fixture
def prometheus():
    provider = MeterProvider(metric_readers=[telemetry.prometheus_reader()])
    telemetry.configure(meter_provider=provider)
    yield provider
    provider.shutdown()  # the reader leaves the /metrics registry
    telemetry.configure()


def test_metrics_are_for_staff_or_the_scrape_token(prometheus, settings, client):
    telemetry.count_request(addon="shop", model="orders", action="read", status=200)
    assert client.get("/api/metrics").status_code == 401
    client.force_login(User.objects.create_user("plain"))
    assert client.get("/api/metrics").status_code == 403
    client.force_login(User.objects.create_user("ops", is_staff=True))
    response = client.get("/api/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "metacore_requests" in text and 'addon="shop"' in text
    settings.METACORE = {**settings.METACORE, "METRICS_TOKEN": "scrape-me"}
    assert APIClient().get("/api/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert APIClient().get("/api/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    settings.METACORE = {**settings.METACORE, "METRICS_PUBLIC": True}
    assert APIClient().get("/api/metrics").status_code == 200


def test_store_requests_show_up_in_the_scrape(prometheus, settings):
    admin = User.objects.create_superuser("root", "r@example.test", None)
    client = APIClient()
    client.force_authenticate(admin)
    client.get("/api/dynamic/nope")
    settings.METACORE = {**settings.METACORE, "METRICS_PUBLIC": True}
    assert 'status="404"' in APIClient().get("/api/metrics").content.decode()


def test_request_id_is_echoed():
    admin = User.objects.create_superuser("root", "r@example.test", None)
    client = APIClient()
    client.force_authenticate(admin)
    response = client.get("/api/metacore/installations", HTTP_X_REQUEST_ID="req-42.a_b")
    assert response["X-Request-ID"] == "req-42.a_b"
    made = client.get("/api/metacore/installations")["X-Request-ID"]
    assert len(made) == 32
    hostile = client.get("/api/metacore/installations", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")[
        "X-Request-ID"
    ]
    assert len(hostile) == 32 and "\n" not in hostile
    assert APIClient().get("/api/metrics", HTTP_X_REQUEST_ID="anon-1")["X-Request-ID"] == "anon-1"
