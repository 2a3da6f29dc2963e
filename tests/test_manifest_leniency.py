"""What upstream accepts and metacore now accepts with a warning (docs/manifest.md): versions
like `1.0`, action fields with an empty name. The warning shows in `metacore_validate`, the
install journal and the install API's answer."""

import io
import json
import tarfile

import pytest
from django.core.management import call_command

from metacore.kernel import get_kernel
from metacore.manifest.parse import load_manifest
from metacore.models import InstallJournal
from tests.installer_support import small_manifest

LENIENT = {
    **small_manifest(key="lenient", version="1.0"),
    "actions": {
        "notes": [
            {
                "key": "archive",
                "label": "Archive",
                "trigger": {"type": "noop"},
                "fields": [{"name": "", "type": "text"}, {"name": "reason", "type": "text"}],
            }
        ]
    },
}


def test_parse_accepts_with_warnings():
    manifest = load_manifest(LENIENT)
    assert manifest.version == "1.0"
    assert [f.key for f in manifest.actions[0].fields] == ["reason"]
    assert any('"1.0" is not MAJOR.MINOR.PATCH' in w for w in manifest.warnings)
    assert any("empty name is ignored" in w for w in manifest.warnings)
    assert load_manifest(small_manifest()).warnings == ()


@pytest.mark.parametrize("version", ["1", "1.0", "v1.2", "1.0-beta"])
def test_lenient_versions(version):
    assert load_manifest({**small_manifest(), "version": version}).warnings


def test_validate_command_prints_the_warnings(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(LENIENT))
    out, err = io.StringIO(), io.StringIO()
    call_command("metacore_validate", str(tmp_path), "--quiet", stdout=out, stderr=err)
    assert 'warning: version: "1.0" is not MAJOR.MINOR.PATCH' in err.getvalue()
    assert "warning: actions" in err.getvalue()
    assert out.getvalue() == ""


@pytest.mark.django_db(transaction=True)
def test_install_journal_and_api_carry_the_warnings(tmp_path, settings):
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    folder = tmp_path / "lenient"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(LENIENT))
    result = get_kernel().installer.install(folder)
    try:
        assert any("1.0" in w for w in result.warnings)
        journal = InstallJournal.objects.filter(addon_key="lenient", operation="install").latest("id")
        assert journal.details["warnings"] == result.warnings
    finally:
        get_kernel().installer.uninstall("lenient", drop_data=True)
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": True}
    admin = User.objects.create_superuser("root", "r@example.test", None)
    client = APIClient()
    client.force_authenticate(admin)
    archive = tmp_path / "lenient.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "manifest.json", arcname="manifest.json")
    with archive.open("rb") as handle:
        response = client.post("/api/metacore/installations/lenient", {"bundle": handle})
    try:
        assert response.status_code == 201, response.content
        assert any("1.0" in w for w in response.json()["warnings"])
    finally:
        get_kernel().installer.uninstall("lenient", drop_data=True)
