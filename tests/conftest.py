"""Shared test fixtures. The suite runs on the database in DATABASE_URL (SQLite when unset)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDK_FIXTURES = ROOT.parent / "shared" / "fixtures" / "metacore-sdk"


@pytest.fixture
def sdk_fixtures():
    assert SDK_FIXTURES.is_dir(), f"missing {SDK_FIXTURES}"
    return SDK_FIXTURES


def is_postgres():
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.fixture
def otel():
    """In-memory OpenTelemetry providers for metacore's spans, metrics and log records."""
    from metacore.host.telemetry import InMemoryTelemetry

    telemetry = InMemoryTelemetry()
    yield telemetry
    telemetry.close()
