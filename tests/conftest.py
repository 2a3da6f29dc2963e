"""Shared test fixtures. The suite runs on the database in DATABASE_URL (SQLite when unset).

The upstream SDK corpus is a conformance suite (tests/addon_fixtures.py): its cases carry the
`conformance` marker, are skipped with one summary line when the corpus is absent, and the
run fails before collecting anything when `CI` is set and the corpus is missing.
"""

import os

import pytest
from addon_fixtures import CONFORMANCE, HAVE_SDK, ROOT, SDK_ENV, SDK_FIXTURES  # noqa: F401 (re-exported)

_MISSING = (
    f"SDK conformance corpus not found at {SDK_FIXTURES} (set {SDK_ENV} to run it): conformance cases skipped"
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{CONFORMANCE}: needs the upstream SDK corpus (tests/addon_fixtures.py)"
    )
    if not HAVE_SDK and os.environ.get("CI"):
        raise pytest.UsageError(
            f"CI is set and the SDK conformance corpus is missing: {SDK_FIXTURES} "
            f"(check out ../shared or set {SDK_ENV})"
        )


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=_MISSING)
    for item in items:
        if "sdk_fixtures" in getattr(item, "fixturenames", ()):
            item.add_marker(CONFORMANCE)
        if not HAVE_SDK and CONFORMANCE in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not HAVE_SDK:
        terminalreporter.write_line(_MISSING, yellow=True)


@pytest.fixture
def sdk_fixtures():
    """The corpus' root; tests that take it are conformance cases (skipped when it is absent)."""
    return SDK_FIXTURES


def is_postgres():
    from django.db import connection

    return connection.vendor == "postgresql"


@pytest.fixture
def otel():
    """In-memory OpenTelemetry providers for metacore's spans, metrics and log records."""
    from metacore.testing import InMemoryTelemetry

    telemetry = InMemoryTelemetry()
    yield telemetry
    telemetry.close()


@pytest.fixture(autouse=True)
def denials_roll_back_with_the_test(request):
    """A test in a transaction rolled back at its end (pytest-django's `db`) keeps audited
    denials in that transaction, so the next test starts without them; tests in real
    transactions (`transaction=True`, `transactional_db`) see denials written on their own
    connection, as in production."""
    from metacore.testing import denials_in_test_transaction

    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction", False)
    )
    if transactional:
        yield
        return
    with denials_in_test_transaction():
        yield


@pytest.fixture(scope="session", autouse=True)
def drop_metacore_roles(django_db_setup, django_db_blocker):
    """Roles are cluster-wide: drop the ones this test database's installs created (the
    database itself goes with pytest-django's teardown, which runs after this)."""
    yield
    from metacore.schema.roles import drop_database_roles

    with django_db_blocker.unblock():
        drop_database_roles()
