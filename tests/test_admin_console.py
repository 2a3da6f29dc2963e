"""The admin as an operator's console, through Django's test client: the manifest as tables,
settings through a typed form and the management service, records nobody can edit or delete,
actors by name, effective enforcer modes, and install/upgrade from an uploaded bundle with the
plan shown before it is applied."""

import io
import json
import shutil
import tarfile
import uuid

import pytest
import sandbox_guests as guests
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation, InstallJournal
from tests.installer_support import EXAMPLES

pytestmark = pytest.mark.django_db

SETTINGS = [
    {"key": "greeting", "type": "string", "label": "Greeting", "default": "hello"},
    {"key": "sla_hours", "type": "number", "label": "SLA (hours)", "default": 24},
    {"key": "auto_assign", "type": "boolean", "label": "Auto-assign", "default": False},
    {
        "key": "provider",
        "type": "select",
        "label": "Provider",
        "default": "finkok",
        "options": [{"value": "finkok", "label": "Finkok"}, {"value": "sw", "label": "SW Sapien"}],
    },
    {"key": "api_key", "type": "secret", "label": "API key"},
]


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}


def bundle_dir(tmp_path, version="1.0.0", **changes):
    target = tmp_path / f"helpdesk-{version}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(EXAMPLES / "helpdesk", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(version=version, settings=SETTINGS, **changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target, manifest


def tarball(folder):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.add(file, arcname=file.relative_to(folder).as_posix())
    return SimpleUploadedFile("bundle.tar.gz", buffer.getvalue(), content_type="application/gzip")


@pytest.fixture
def helpdesk(tmp_path):
    folder, _ = bundle_dir(tmp_path)
    get_kernel().installer.install(folder)
    return Installation.objects.get(key="helpdesk")


def change_url(installation):
    return reverse("admin:metacore_installation_change", args=[installation.pk])


def settings_form(**values):
    form = {
        "setting__greeting": "hello",
        "setting__sla_hours": "24",
        "setting__provider": "finkok",
        "setting__api_key": "",
    }
    form.update(values)
    return {k: v for k, v in form.items() if v is not None}


def test_manifest_is_rendered_as_tables(admin_client, helpdesk):
    page = admin_client.get(change_url(helpdesk)).content.decode()
    assert "<h3>Models</h3>" in page and "<code>tickets</code>" in page and "organization-scoped" in page
    assert "<code>title</code>" in page and "string(200)" in page and "<code>status</code>" in page
    assert "<code>event:emit</code>" in page and "<code>helpdesk.*</code>" in page
    assert "<code>resolve</code>" in page and "<code>resolution</code> text*" in page
    assert '"model_definitions"' not in page and '"columns"' not in page  # no raw JSON blob


def test_settings_form_is_built_from_the_manifest_and_typed(admin_client, helpdesk):
    page = admin_client.get(change_url(helpdesk)).content.decode()
    assert 'name="setting__sla_hours"' in page and 'type="number"' in page
    assert 'type="checkbox" name="setting__auto_assign"' in page
    assert '<option value="sw">SW Sapien</option>' in page
    assert 'type="password" name="setting__api_key"' in page and "write-only (not set)" in page
    bad = admin_client.post(
        change_url(helpdesk), settings_form(setting__sla_hours="soon", setting__provider="other")
    )
    assert bad.status_code == 200 and "Enter a number." in bad.content.decode()
    helpdesk.refresh_from_db()
    assert (
        helpdesk.settings["sla_hours"] == 24
        and not AuditRecord.objects.filter(kind="addon.settings").exists()
    )


def test_settings_are_saved_through_the_service_with_an_audit_record(admin_client, helpdesk):
    response = admin_client.post(
        change_url(helpdesk),
        settings_form(
            setting__greeting="buenas",
            setting__sla_hours="4.5",
            setting__auto_assign="on",
            setting__provider="sw",
            setting__api_key="s3cret",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    helpdesk.refresh_from_db()
    assert {k: helpdesk.settings[k] for k in ("greeting", "sla_hours", "auto_assign", "provider")} == {
        "greeting": "buenas",
        "sla_hours": 4.5,
        "auto_assign": True,
        "provider": "sw",
    }
    assert helpdesk.settings["api_key"]
    record = AuditRecord.objects.get(kind="addon.settings", addon="helpdesk")
    assert record.actor == str(User.objects.get(username="admin").pk) and "s3cret" not in json.dumps(
        record.details
    )
    page = admin_client.get(change_url(helpdesk)).content.decode()
    assert "s3cret" not in page and "write-only (set)" in page
    # blank keeps the secret; the rest is replaced
    admin_client.post(change_url(helpdesk), settings_form(setting__greeting="hola"))
    helpdesk.refresh_from_db()
    assert helpdesk.settings["greeting"] == "hola" and helpdesk.settings["api_key"]


def test_the_api_refuses_the_types_the_form_refuses(admin_client, helpdesk):
    response = admin_client.post(
        "/api/metacore/installations/helpdesk/settings",
        {"sla_hours": "soon", "auto_assign": "yes", "provider": "other"},
        content_type="application/json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["sla_hours"] == ["must be a number"] and errors["auto_assign"] == ["must be true or false"]
    assert errors["provider"] == ["must be one of: finkok, sw"]


@pytest.mark.parametrize("model", ["auditrecord", "installjournal", "appliedmigration"])
def test_kernel_records_cannot_be_added_changed_or_deleted_even_by_a_superuser(admin_client, helpdesk, model):
    changelist = reverse(f"admin:metacore_{model}_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "delete_selected" not in page
    record = {"auditrecord": AuditRecord, "installjournal": InstallJournal}.get(model)
    if record is None:
        return
    obj = record.objects.first()
    assert admin_client.get(reverse(f"admin:metacore_{model}_delete", args=[obj.pk])).status_code == 403
    assert (
        admin_client.post(
            reverse(f"admin:metacore_{model}_delete", args=[obj.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    assert record.objects.filter(pk=obj.pk).exists()
    assert admin_client.get(reverse(f"admin:metacore_{model}_add")).status_code == 403
    detail = admin_client.get(reverse(f"admin:metacore_{model}_change", args=[obj.pk])).content.decode()
    assert 'name="_save"' not in detail and 'name="_continue"' not in detail


def test_audit_shows_the_actor_by_name_and_tenant_ids_on_one_line(admin_client, helpdesk):
    ann = User.objects.create_user("ann")
    tenant = str(uuid.uuid4())
    get_kernel().audit.record(
        "crud.create",
        actor=str(ann.pk),
        tenant=tenant,
        addon="helpdesk",
        target="helpdesk.tickets:1",
        decision="allow",
    )
    page = admin_client.get(
        reverse("admin:metacore_auditrecord_changelist"), {"kind": "crud.create"}
    ).content.decode()
    row = page.split("<tbody>")[1]
    assert '<td class="field-actor_name">ann</td>' in row
    assert f'<span style="white-space: nowrap">{tenant}</span>' in row


def test_failed_wasm_calls_are_not_recorded_as_allowed(tmp_path, admin_client):
    target = tmp_path / "trapper"
    shutil.copytree(EXAMPLES / "helpdesk", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(
        key="trapper",
        name="trapper",
        hooks={},
        actions={},
        backend={"runtime": "wasm", "entry": "backend/helpdesk.wasm", "exports": ["trap", "echo"]},
    )
    (target / "backend" / "helpdesk.wasm").write_bytes(guests.hostile())
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    get_kernel().sandbox.call("trapper", "echo", {"a": 1})
    with pytest.raises(MetacoreError):
        get_kernel().sandbox.call("trapper", "trap", {})
    calls = {r.target: r for r in AuditRecord.objects.filter(kind="sandbox.call", addon="trapper")}
    assert calls["echo"].decision == "allow" and calls["echo"].details["outcome"] == "ok"
    assert (
        calls["trap"].decision == "error"
        and calls["trap"].details["outcome"] == "trap"
        and calls["trap"].reason
    )
    page = admin_client.get(
        reverse("admin:metacore_auditrecord_changelist"), {"decision": "error"}
    ).content.decode()
    assert "1 audit record" in page and "trap" in page


def test_effective_enforcer_mode_is_visible_without_stored_rows(admin_client, helpdesk):
    page = admin_client.get(reverse("admin:metacore_enforcermode_changelist")).content.decode()
    effective = page.split('id="effective-modes"')[1].split("</table>")[0]
    assert "<td>(global)</td><td><b>enforce</b></td><td>default</td>" in effective
    assert "<td>helpdesk</td><td><b>enforce</b></td><td>default</td>" in effective
    get_kernel().enforcer.set_mode("shadow", "helpdesk", actor="test")
    page = admin_client.get(reverse("admin:metacore_enforcermode_changelist")).content.decode()
    assert "<td>helpdesk</td><td><b>shadow</b></td><td>addon override</td>" in page
    addons = admin_client.get(reverse("admin:metacore_installation_changelist")).content.decode()
    assert "<b>shadow</b> <small>(addon override)</small>" in addons


def test_install_from_an_uploaded_bundle(admin_client, tmp_path):
    upload = reverse("admin:metacore_installation_upload")
    assert (
        "Install or upgrade from a bundle"
        in admin_client.get(reverse("admin:metacore_installation_changelist")).content.decode()
    )
    folder, _ = bundle_dir(tmp_path)
    page = admin_client.post(upload, {"bundle": tarball(folder)})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Installed helpdesk 1.0.0" in body and "tables created: tickets" in body
    installation = Installation.objects.get(key="helpdesk")
    secret = body.split("<pre>")[1].split("</pre>")[0]
    from metacore.installer.secrets import secret_matches

    assert secret_matches(installation, secret)
    assert InstallJournal.objects.get(addon_key="helpdesk", operation="install").actor == str(
        User.objects.get(username="admin").pk
    )


def test_upgrade_shows_the_plan_before_applying_it(admin_client, helpdesk, tmp_path):
    upload = reverse("admin:metacore_installation_upload")
    folder, manifest = bundle_dir(tmp_path, "1.1.0")
    manifest["model_definitions"][0]["columns"].append({"name": "due_at", "type": "timestamp"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    page = admin_client.post(upload, {"bundle": tarball(folder)}).content.decode()
    assert (
        "Upgrade helpdesk 1.0.0 → 1.1.0" in page
        and "add column tickets.due_at" in page
        and "Apply this upgrade" in page
    )
    assert Installation.objects.get(key="helpdesk").version == "1.0.0"  # nothing applied yet
    token = page.split('name="token" value="')[1].split('"')[0]
    tampered = admin_client.post(
        reverse("admin:metacore_installation_upgrade"), {"token": token[:-2] + "xx"}, follow=True
    )
    assert "expired or was altered" in tampered.content.decode()
    applied = admin_client.post(reverse("admin:metacore_installation_upgrade"), {"token": token}, follow=True)
    assert "Upgraded helpdesk to 1.1.0" in applied.content.decode()
    assert Installation.objects.get(key="helpdesk").version == "1.1.0"
    assert not list((tmp_path / "data" / "uploads" / "pending").iterdir())  # the kept upload is gone
    again = admin_client.post(reverse("admin:metacore_installation_upgrade"), {"token": token}, follow=True)
    assert "gone or changed since its plan was shown" in again.content.decode()


def test_a_blocked_upgrade_offers_no_apply_button(admin_client, helpdesk, tmp_path):
    get_kernel().registry.resolve("helpdesk.tickets").model_class.objects.create(
        title="no resolution yet", organization_id=uuid.uuid4()
    )
    folder, manifest = bundle_dir(tmp_path, "1.1.0")
    for column in manifest["model_definitions"][0]["columns"]:
        if column["name"] == "resolution":
            column["required"] = True
    (folder / "manifest.json").write_text(json.dumps(manifest))
    page = admin_client.post(
        reverse("admin:metacore_installation_upload"), {"bundle": tarball(folder)}
    ).content.decode()
    assert "BLOCKED: 1 row in tickets.resolution is null" in page
    assert "Apply this upgrade" not in page and 'name="token"' not in page


def test_upload_needs_the_change_permission(client, helpdesk, tmp_path):
    User.objects.create_user("clerk", password="pw", is_staff=True)
    client.login(username="clerk", password="pw")
    folder, _ = bundle_dir(tmp_path, "1.1.0")
    assert (
        client.post(reverse("admin:metacore_installation_upload"), {"bundle": tarball(folder)}).status_code
        == 403
    )
    assert client.post(reverse("admin:metacore_installation_upgrade"), {"token": "x"}).status_code == 403
    assert Installation.objects.get(key="helpdesk").version == "1.0.0"


def test_an_upstream_bundle_renders_with_its_settings_form(admin_client, sdk_fixtures):
    """A published bundle: `default_value`, a select, and secrets marked `"secret": true`."""
    get_kernel().installer.install(sdk_fixtures / "bundles" / "fiscal_mexico-1.0.0.tar.gz")
    installation = Installation.objects.get(key="fiscal_mexico")
    assert installation.settings["environment"] == "sandbox" and installation.settings["auto_stamp"] is False
    page = admin_client.get(change_url(installation)).content.decode()
    assert '<option value="sandbox" selected>Sandbox (pruebas)</option>' in page
    assert 'type="password" name="setting__api_key"' in page and "<code>fiscal_documents</code>" in page
