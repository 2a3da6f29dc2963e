"""End to end: the audit trail of an install, a create over HTTP and a denied capability,
read back from the database sink and from the in-memory OpenTelemetry exporters."""

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from metacore.audit.sinks import DatabaseSink, LogSink, OpenTelemetrySink
from metacore.context import CallContext
from metacore.errors import CapabilityDenied
from metacore.kernel import get_kernel, reset_kernel
from metacore.models import AuditRecord, InstallJournal, TenantMembership
from metacore.telemetry import instrument_django

NOTES = Path(__file__).parent / "data" / "audit_notes"
ORG = uuid.UUID("cccccccc-0000-4000-8000-000000000003")


@pytest.fixture
def full_pipe(settings, otel):
    settings.METACORE = {**settings.METACORE, "AUDIT_SINKS": [LogSink, DatabaseSink, OpenTelemetrySink]}
    reset_kernel()
    instrumentor = instrument_django(tracer_provider=otel.tracer_provider)
    yield otel
    instrumentor.uninstrument()
    reset_kernel()


@pytest.mark.django_db(transaction=True)
def test_install_create_and_denial_leave_a_trail(full_pipe):
    otel, kernel = full_pipe, get_kernel()
    kernel.installer.install(NOTES, context=CallContext.system("ops"))
    try:
        user = User.objects.create_superuser("alice", password="pw")
        TenantMembership.objects.create(user=user, organization_id=ORG)
        client = APIClient()
        client.force_authenticate(user)
        response = client.post("/api/dynamic/notes", {"title": "hello"}, format="json")
        assert response.status_code == 201, response.content
        row_id = response.json()["data"]["id"]

        with pytest.raises(CapabilityDenied):
            kernel.enforcer.check(
                "audit_notes", "http:fetch", "https://api.evil.com/x", CallContext.system("alice")
            )

        install = AuditRecord.objects.get(kind="addon.install", addon="audit_notes")
        assert install.decision in ("", "allow")
        create = AuditRecord.objects.get(kind="crud.create", addon="audit_notes")
        assert create.target.endswith(row_id) and create.tenant == str(ORG)
        denial = AuditRecord.objects.get(kind="capability.check", addon="audit_notes")
        assert (denial.decision, denial.mode, denial.actor) == ("deny", "enforce", "alice")
        assert denial.target == "http:fetch https://api.evil.com/x"

        # The same three events as OpenTelemetry log records.
        for kind, record in (
            ("addon.install", install),
            ("crud.create", create),
            ("capability.check", denial),
        ):
            (log,) = [
                r
                for r in otel.log_records(f"metacore.audit.{kind}")
                if r.attributes["metacore.audit.id"] == str(record.event_id)
            ]
            assert log.attributes["metacore.audit.addon"] == "audit_notes"

        # The create ran inside the HTTP server span: its audit row carries that trace, and
        # the audit event sits on the store span the write ran in, a child of the HTTP span.
        (http_span,) = [s for s in otel.spans() if s.kind.name == "SERVER"]
        assert create.trace_id == format(http_span.context.trace_id, "032x")
        (store_span,) = otel.spans("metacore.store.create")
        assert store_span.parent.span_id == http_span.context.span_id
        assert "metacore.audit.crud.create" in [e.name for e in store_span.events]
        assert {
            (p.attributes["metacore.capability"], p.value)
            for p in otel.metric_points("metacore.capability.denials")
        } == {("http:fetch", 1)}
    finally:
        kernel.installer.uninstall("audit_notes", drop_data=True)
        InstallJournal.objects.filter(addon_key="audit_notes").delete()
