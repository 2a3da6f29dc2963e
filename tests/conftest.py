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


@pytest.fixture(scope="session", autouse=True)
def drop_metacore_roles(django_db_setup, django_db_blocker):
    """Roles are cluster-wide: drop the ones this test database's installs created (the
    database itself goes with pytest-django's teardown, which runs after this)."""
    yield
    from metacore.schema.roles import drop_database_roles

    with django_db_blocker.unblock():
        drop_database_roles()
