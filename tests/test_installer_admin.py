"""The Django admin pages of the installer: addons with their state and actions, the
journal, migrations, the audit trail and the enforcer mode."""

import pytest
from django.urls import reverse

from metacore.kernel import get_kernel
from metacore.models import AuditRecord, EnforcerMode, Installation
from tests.installer_support import EXAMPLES

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def installed(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    get_kernel().installer.install(EXAMPLES / "tasks")


def test_addon_list_shows_state_version_tables_and_capabilities(admin_client):
    page = admin_client.get(reverse("admin:metacore_installation_changelist")).content.decode()
    assert "tasks" in page and "1.0.0" in page and "projects, tasks" in page and "enabled" in page
    detail = admin_client.get(
        reverse("admin:metacore_installation_change", args=[Installation.objects.get().pk])
    )
    assert detail.status_code == 200 and "event:emit" in detail.content.decode()


def test_disable_and_enable_actions_go_through_the_installer(admin_client):
    url = reverse("admin:metacore_installation_changelist")
    pk = Installation.objects.get().pk
    admin_client.post(url, {"action": "disable_addons", "_selected_action": [pk]})
    assert Installation.objects.get().state == "disabled"
    admin_client.post(url, {"action": "enable_addons", "_selected_action": [pk]})
    assert Installation.objects.get().state == "enabled"
    assert AuditRecord.objects.filter(kind="addon.disable", addon="tasks").exists()


@pytest.mark.parametrize("name", ["installjournal", "appliedmigration", "auditrecord", "enforcermode"])
def test_record_pages_render(admin_client, name):
    response = admin_client.get(reverse(f"admin:metacore_{name}_changelist"))
    assert response.status_code == 200


def test_audit_trail_filters_by_kind_decision_and_addon(admin_client):
    url = reverse("admin:metacore_auditrecord_changelist")
    page = admin_client.get(
        url, {"kind": "addon.install", "decision": "allow", "addon": "tasks"}
    ).content.decode()
    assert "addon.install" in page and "1 audit record" in page


def test_enforcer_mode_changes_from_the_admin_are_audited(admin_client):
    response = admin_client.post(
        reverse("admin:metacore_enforcermode_add"), {"addon_key": "tasks", "mode": "shadow"}
    )
    assert response.status_code == 302
    assert EnforcerMode.objects.get(addon_key="tasks").mode == "shadow"
    assert AuditRecord.objects.filter(kind="enforcer.mode_changed", addon="tasks").exists()
