"""One CallContext for every caller, and one meaning of the audit `actor` (docs/audit.md)."""

import uuid
from dataclasses import FrozenInstanceError
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS
from django.test import RequestFactory

from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, InstallJournal, TenantMembership
from tests.installer_support import EXAMPLES

pytestmark = pytest.mark.django_db
ORG = uuid.UUID("00000000-0000-0000-0000-0000000000c1")


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    yield tmp_path / "data"
    for installation in Installation.objects.all():  # committed installs do not roll back
        get_kernel().installer.uninstall(installation.key, drop_data=True)


def test_the_audit_doc_snippet():
    user = User.objects.create_user("ann")
    TenantMembership.objects.create(user=user, organization_id=ORG)

    ctx = CallContext.for_user(user)  # actor == str(user.pk), tenant from TENANT_RESOLVER
    cli = CallContext.system()  # actor == "cli", no user, no tenant

    assert (ctx.user, ctx.actor, ctx.tenant, ctx.using) == (user, str(user.pk), str(ORG), DEFAULT_DB_ALIAS)
    assert (cli.user, cli.actor, cli.tenant, cli.request_id) == (None, "cli", None, "")
    with pytest.raises(FrozenInstanceError):
        ctx.actor = "someone else"  # type: ignore[misc]


def test_from_request_takes_the_user_their_tenant_and_the_request_id():
    user = User.objects.create_user("bob")
    TenantMembership.objects.create(user=user, organization_id=ORG)
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="r-1")
    request.user = user

    ctx = CallContext.from_request(request)

    assert (ctx.user, ctx.actor, ctx.tenant, ctx.request_id) == (user, str(user.pk), str(ORG), "r-1")
    picked = CallContext.from_request(request, tenant="00000000-0000-0000-0000-0000000000c2")
    assert picked.tenant == "00000000-0000-0000-0000-0000000000c2"
    fresh = CallContext.from_request(RequestFactory().get("/", HTTP_X_REQUEST_ID="not valid " * 10))
    assert (fresh.user, fresh.actor, fresh.tenant, len(fresh.request_id)) == (None, "", None, 32)


def test_management_commands_audit_as_cli(data_dir):
    call_command("metacore_install", str(EXAMPLES / "helpdesk"), stdout=StringIO())
    call_command("metacore_disable", "helpdesk", stdout=StringIO())

    assert AuditRecord.objects.get(kind="addon.install", addon="helpdesk").actor == "cli"
    assert AuditRecord.objects.get(kind="addon.disable", addon="helpdesk").actor == "cli"
    assert set(InstallJournal.objects.filter(addon_key="helpdesk").values_list("actor", flat=True)) == {"cli"}


def test_the_installer_records_a_user_by_id(data_dir):
    admin = User.objects.create_superuser("root")

    get_kernel().installer.install(EXAMPLES / "helpdesk", context=CallContext.for_user(admin))

    assert AuditRecord.objects.get(kind="addon.install", addon="helpdesk").actor == str(admin.pk)
    assert InstallJournal.objects.get(addon_key="helpdesk", operation="install").actor == str(admin.pk)
    hook = AuditRecord.objects.get(kind="sandbox.call", addon="helpdesk")  # its on_install hook ran for admin
    assert (hook.target, hook.actor) == ("on_install", str(admin.pk))
