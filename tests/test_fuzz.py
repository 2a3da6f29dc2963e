"""A fuzz campaign (issue 12): schemathesis generates requests from metacore's own OpenAPI
document (every endpoint, the installed example addon's dynamic models included) and sends
them through the WSGI handler with a real user's token, on whichever database the suite
runs. Every answer must be below 500, match the documented schema for its status, and, when
an error, be the documented envelope. The example budget is fixed (`FUZZ_EXAMPLES` per
operation, derandomized), so the campaign is the same in every CI run and stays within
minutes. Inputs it found are kept as regressions in test_robustness.py."""

import os
from pathlib import Path

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from store_support import ORG_A, installed_addon, make_user

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "helpdesk"
FUZZ_EXAMPLES = int(os.environ.get("METACORE_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def example(django_db_setup, django_db_blocker):
    with installed_addon(django_db_blocker, EXAMPLE) as result:
        yield result


@pytest.fixture
def token(db, example):
    """A real member of one organization with every permission of the example addon (not a
    superuser: the management endpoints answer it 403, as they would a hostile member)."""
    from rest_framework.authtoken.models import Token

    from metacore.kernel import get_kernel

    user = make_user("fuzzer", ORG_A)
    tables = [m.spec.table for m in get_kernel().registry.all_models() if m.installation_key == example.key]
    get_kernel().permissions.grant(user, [f"{example.key}.{table}.*" for table in tables])
    return Token.objects.create(user=user).key


@pytest.fixture
def api_schema(db, example, token):
    """The schema served by the real WSGI handler, read as the fuzzing user (the schema
    follows the API's authentication). The handler closes database connections when a
    request ends, which would close the test's transaction: like Django's test client, keep
    them open meanwhile."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/", get_wsgi_application(), headers={"Authorization": f"Token {token}"}
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def envelope_errors(response):
    """Every error is the documented envelope with a machine code."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.headers
    body = response.json()
    assert body["success"] is False and isinstance(body["message"], str), body
    assert isinstance(body["code"], str) and isinstance(body["errors"], dict), body


def fuzz(operation, headers):
    """FUZZ_EXAMPLES generated cases of one operation (schemathesis' pytest plugin is driven
    by hand: its fixture mode does not run under pytest 9)."""

    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=strategy)
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
        envelope_errors(response)

    run()


def test_no_input_makes_the_api_fail(api_schema, token):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert any("/api/dynamic/helpdesk." in op.path for op in operations), [op.path for op in operations]
    failures = []
    for operation in operations:
        try:
            fuzz(operation, {"Authorization": f"Token {token}"})
        except Exception as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
