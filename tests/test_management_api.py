"""Addon management API (/api/metacore/...) through HTTP, on the configured database."""

import hashlib
import io
import json

import pytest
from addon_fixtures import OWN_FIXTURES
from django.contrib.auth.models import Permission, User
from django.db import connection
from rest_framework.test import APIClient

import metacore
from metacore.installer.signing import read_source, write_bundle
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation
from tests.management_bundles import REMOTE_ENTRY, Signer, helpdesk_manifest, unsigned_archive, write_source

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/metacore"


@pytest.fixture(autouse=True)
def drop_installed_addons():
    """Addon tables live outside Django's flush: drop them after each test."""
    yield
    installer = get_kernel().installer
    for row in Installation.objects.all():
        installer.uninstall(row.key, drop_data=True)


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def catalog(tmp_path, settings, signer):
    """A catalog with one signed bundle; unsigned bundles refused; `signer` trusted."""
    root = tmp_path / "catalog"
    root.mkdir()
    settings.METACORE = {
        **settings.METACORE,
        "BUNDLE_DIR": root,
        "DATA_DIR": tmp_path / "var",
        "TRUSTED_KEYS": [signer.public],
        "ALLOW_UNSIGNED_BUNDLES": False,
    }
    signer.signed_archive(write_source(tmp_path / "src"), root / "helpdesk-1.0.0.tar.gz")
    return root


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin():
    return client_for(User.objects.create_user("admin", is_staff=True, is_superuser=True))


@pytest.fixture
def alice():
    return client_for(User.objects.create_user("alice"))


def table_exists(name_part):
    return any(name_part in t for t in connection.introspection.table_names(include_views=False)) or (
        connection.vendor == "postgresql" and _pg_table("addon_helpdesk", "tickets")
    )


def _pg_table(schema, table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND table_name=%s", [schema, table]
        )
        return cursor.fetchone() is not None


def install(admin, key="helpdesk", **body):
    return admin.post(f"{API}/installations/{key}", body, format="json")


# ------------------------------------------------------------------------ catalog


def test_catalog_lists_bundles_with_state(catalog, admin):
    response = admin.get(f"{API}/catalog")
    assert response.status_code == 200
    [entry] = response.json()
    assert entry["manifest"]["key"] == "helpdesk"
    assert entry["manifest"]["version"] == "1.0.0"
    assert entry["manifest"]["model_definitions"][0]["table_name"] == "tickets"
    assert (entry["installable"], entry["entitled"], entry["installed"], entry["enabled"]) == (
        True,
        True,
        False,
        False,
    )

    assert install(admin).status_code == 201
    detail = admin.get(f"{API}/catalog/helpdesk").json()
    assert (detail["installed"], detail["enabled"], detail["installed_version"]) == (True, True, "1.0.0")


def test_catalog_shows_unsigned_bundle_as_not_installable(catalog, admin, tmp_path, settings):
    unsigned_archive(
        write_source(tmp_path / "other", helpdesk_manifest(key="other")), catalog / "other-1.0.0.tar.gz"
    )
    entry = admin.get(f"{API}/catalog/other").json()
    assert entry["installable"] is False
    assert "not signed" in entry["problems"][0]
    response = install(admin, "other")
    assert response.status_code == 400 and "not signed" in response.json()["message"]
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": True}
    assert admin.get(f"{API}/catalog/other").json()["installable"] is True


def test_catalog_flags_incompatible_kernel(catalog, admin, signer, tmp_path):
    manifest = {**helpdesk_manifest(key="future"), "kernel": ">=9.0.0"}
    signer.signed_archive(write_source(tmp_path / "future", manifest), catalog / "future-1.0.0.tar.gz")
    entry = admin.get(f"{API}/catalog/future").json()
    assert entry["installable"] is False and "kernel" in entry["problems"][0]
    assert install(admin, "future").status_code == 400
    assert not Installation.objects.exists()


def test_catalog_picks_newest_version_and_404s_unknown(catalog, admin, signer, tmp_path):
    signer.signed_archive(
        write_source(tmp_path / "v2", helpdesk_manifest("1.2.0")), catalog / "helpdesk-1.2.0.tar.gz"
    )
    assert admin.get(f"{API}/catalog").json()[0]["manifest"]["version"] == "1.2.0"
    assert admin.get(f"{API}/catalog/helpdesk?version=1.0.0").json()["manifest"]["version"] == "1.0.0"
    response = admin.get(f"{API}/catalog/nope")
    assert response.status_code == 404 and response.json()["success"] is False


def test_catalog_needs_authentication(catalog):
    response = APIClient().get(f"{API}/catalog")
    assert response.status_code == 401


# ------------------------------------------------------------------------ install / lifecycle


def test_install_from_catalog_stores_options_and_returns_secret_once(catalog, admin):
    response = install(admin, settings={"greeting": "hi"}, credentials={"token": "t0k"}, selected_tools=["a"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["addon_key"] == "helpdesk" and body["status"] == "enabled" and body["source"] == "bundle"
    assert body["settings"] == {"greeting": "hi"}
    assert body["credential_keys"] == ["token"] and "credentials" not in body
    secret = body["secret"]
    assert len(bytes.fromhex(secret)) == 32
    row = Installation.objects.get(key="helpdesk")
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.secret_encrypted == ""  # no master key configured
    assert row.credentials == {"token": "t0k"} and row.selected_tools == ["a"]
    assert table_exists("helpdesk")

    listed = admin.get(f"{API}/installations").json()
    assert [i["addon_key"] for i in listed] == ["helpdesk"] and "secret" not in listed[0]
    assert install(admin).status_code == 409
    assert AuditRecord.objects.filter(kind="addon.install", addon="helpdesk", decision="allow").exists()


def test_install_rejects_bad_options(catalog, admin):
    response = install(admin, settings=[1], selected_tools="x")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"settings", "selected_tools"}
    assert admin.post(f"{API}/installations/helpdesk", [1, 2], format="json").status_code == 400
    assert (
        admin.post(f"{API}/installations/helpdesk", "{not json", content_type="application/json").status_code
        == 400
    )
    multipart = admin.post(f"{API}/installations/helpdesk", {"settings": "{oops"}, format="multipart")
    assert multipart.status_code == 400 and "settings" in multipart.json()["errors"]
    assert install(admin, version="7.7.7").status_code == 404
    assert admin.post(f"{API}/installations/helpdesk/settings", [1], format="json").status_code == 400
    assert not Installation.objects.exists()


def test_install_uploaded_bundle_multipart(catalog, admin, signer, tmp_path):
    archive = signer.signed_archive(
        write_source(tmp_path / "up", helpdesk_manifest(key="uploaded")), tmp_path / "u.tar.gz"
    )
    with archive.open("rb") as handle:
        response = admin.post(
            f"{API}/installations/uploaded",
            {"bundle": handle, "settings": json.dumps({"greeting": "yo"})},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert Installation.objects.get(key="uploaded").settings["greeting"] == "yo"


def test_uploaded_bundle_must_match_url_key(catalog, admin, signer, tmp_path):
    archive = signer.signed_archive(write_source(tmp_path / "up"), tmp_path / "u.tar.gz")
    with archive.open("rb") as handle:
        response = admin.post(f"{API}/installations/other", {"bundle": handle}, format="multipart")
    assert response.status_code == 400 and "not 'other'" in response.json()["message"]
    assert not Installation.objects.exists()


def test_enable_disable_settings_uninstall(catalog, admin):
    install(admin)
    disabled = admin.post(f"{API}/installations/helpdesk/disable")
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert admin.get(f"{API}/manifests").json() == []
    assert admin.get(f"{API}/navigation").json() == []
    enabled = admin.post(f"{API}/installations/helpdesk/enable")
    assert enabled.status_code == 200 and enabled.json()["status"] == "enabled"

    updated = admin.post(
        f"{API}/installations/helpdesk/settings", {"greeting": "buenas", "sla_hours": 4}, format="json"
    )
    assert updated.status_code == 200 and updated.json()["settings"] == {"greeting": "buenas", "sla_hours": 4}
    unknown = admin.post(f"{API}/installations/helpdesk/settings", {"colour": "red"}, format="json")
    assert unknown.status_code == 400 and "colour" in unknown.json()["errors"]
    assert AuditRecord.objects.filter(kind="addon.settings", addon="helpdesk").count() == 1

    assert admin.delete(f"{API}/installations/helpdesk?drop=false").status_code == 204
    assert admin.get(f"{API}/installations").json() == []
    assert table_exists("helpdesk")  # data kept
    assert admin.post(f"{API}/installations/helpdesk/enable").status_code == 404

    assert install(admin).status_code == 201  # adopts the kept tables
    assert admin.delete(f"{API}/installations/helpdesk?drop=true").status_code == 204
    assert not Installation.objects.filter(key="helpdesk").exists()
    assert not table_exists("helpdesk")
    assert admin.delete(f"{API}/installations/helpdesk").status_code == 404


def test_changes_need_staff_or_manage_addons(catalog, alice, admin):
    for method, path in [
        ("post", "installations/helpdesk"),
        ("post", "installations/helpdesk/enable"),
        ("post", "installations/helpdesk/disable"),
        ("post", "installations/helpdesk/settings"),
        ("post", "installations/helpdesk/secret"),
        ("post", "installations/helpdesk/upgrade"),
        ("delete", "installations/helpdesk"),
    ]:
        response = getattr(alice, method)(f"{API}/{path}", {}, format="json")
        assert response.status_code == 403, path
        assert "metacore.manage_addons" in response.json()["message"]
    assert not Installation.objects.exists()
    assert (
        AuditRecord.objects.filter(
            kind="permission.check", actor=str(User.objects.get(username="alice").pk), decision="deny"
        ).count()
        == 7
    )

    user = User.objects.get(username="alice")
    user.user_permissions.add(Permission.objects.get(codename="manage_addons"))
    assert install(client_for(User.objects.get(pk=user.pk))).status_code == 201


def test_rotate_secret(catalog, admin, settings):
    settings.METACORE = {**settings.METACORE, "SECRET_MASTER_KEY": "master-key-for-tests"}
    first = install(admin).json()["secret"]
    response = admin.post(f"{API}/installations/helpdesk/secret")
    assert response.status_code == 200
    second = response.json()["secret"]
    assert second != first
    row = Installation.objects.get(key="helpdesk")
    assert row.secret_hash == hashlib.sha256(second.encode()).hexdigest()
    assert row.secret_encrypted and second not in row.secret_encrypted
    assert AuditRecord.objects.filter(kind="addon.secret_rotated", addon="helpdesk").exists()


def test_upgrade_dry_run_then_apply(catalog, admin, signer, tmp_path):
    install(admin)
    newer = helpdesk_manifest("1.1.0")
    newer["model_definitions"][0]["columns"].append({"name": "priority", "type": "string", "size": 20})
    signer.signed_archive(write_source(tmp_path / "v2", newer), catalog / "helpdesk-1.1.0.tar.gz")
    installer = get_kernel().installer
    response = admin.post(f"{API}/installations/helpdesk/upgrade?dry_run=1", {}, format="json")
    if not (callable(getattr(installer, "upgrade", None)) and callable(getattr(installer, "plan", None))):
        assert response.status_code == 501 and "upgrade" in response.json()["message"]
        return
    assert response.status_code == 200, response.content
    plan = response.json()
    assert (plan["from_version"], plan["to_version"]) == ("1.0.0", "1.1.0")
    assert any("priority" in step["words"] for step in plan["steps"])
    assert Installation.objects.get(key="helpdesk").version == "1.0.0"  # dry run changed nothing

    applied = admin.post(f"{API}/installations/helpdesk/upgrade", {"version": "1.1.0"}, format="json")
    assert applied.status_code == 200, applied.content
    assert applied.json()["version"] == "1.1.0" and applied.json()["plan"]["steps"]
    assert Installation.objects.get(key="helpdesk").version == "1.1.0"
    again = admin.post(f"{API}/installations/helpdesk/upgrade", {"version": "1.1.0"}, format="json")
    assert again.status_code == 409  # same version


# ------------------------------------------------------------------------ shell endpoints


def test_navigation_filtered_by_read_permission(catalog, admin, alice):
    install(admin)
    [group] = admin.get(f"{API}/navigation").json()
    assert group["title"] == "sidebar.support" and group["target"] == "sidebar.operations"
    urls = [item.get("url") for item in group["items"]]
    assert urls == ["/m/tickets", "/help"]
    assert group["items"][0]["owner"] == "addon:helpdesk"

    [alice_group] = alice.get(f"{API}/navigation").json()
    assert [item.get("url") for item in alice_group["items"]] == ["/help"]

    reader = User.objects.create_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="helpdesk.tickets.read"))
    [reader_group] = client_for(reader).get(f"{API}/navigation").json()
    assert [item.get("url") for item in reader_group["items"]] == ["/m/tickets", "/help"]


def test_manifests_flat_with_kernel_version_header(catalog, admin):
    install(admin)
    response = admin.get(f"{API}/manifests")
    assert response.status_code == 200
    assert response["X-Metacore-Kernel-Version"] == metacore.KERNEL_VERSION
    [manifest] = response.json()
    assert manifest["key"] == "helpdesk" and manifest["frontend"]["entry"] == "remoteEntry.js"
    assert "model_definitions" in manifest
    [lite] = admin.get(f"{API}/manifests?lite=1").json()
    assert "model_definitions" not in lite and lite["navigation"]


def test_manifests_present_v3_addons_flat(catalog, admin, signer, tmp_path):
    source = tmp_path / "v3"
    source.mkdir()
    manifest = json.loads((OWN_FIXTURES / "storefront-template" / "manifest.json").read_text())
    (source / "manifest.json").write_text(json.dumps(manifest))
    signer.signed_archive(source, catalog / "v3.tar.gz")
    entry = [e for e in admin.get(f"{API}/catalog").json() if e["manifest"]["key"] != "helpdesk"][0]
    assert entry["installable"], entry["problems"]
    assert "apiVersion" not in entry["manifest"] and entry["manifest"]["version"]


def test_v3_manifest_presented_flat(catalog, admin, signer, tmp_path):
    source = tmp_path / "v3"
    source.mkdir()
    (source / "manifest.json").write_text((OWN_FIXTURES / "library" / "manifest.json").read_text())
    signer.signed_archive(source, catalog / "library.tar.gz")
    manifest = admin.get(f"{API}/catalog/library").json()["manifest"]
    assert (manifest["key"], manifest["category"], manifest["icon"]) == (
        "library",
        "productivity",
        "BookOpen",
    )
    assert manifest["tenant_isolation"] == "schema-per-tenant"
    assert manifest["navigation"][0]["items"][0]["model"] == "Book"
    assert manifest["model_definitions"][0]["table_name"] == "books"
    assert {c["name"] for c in manifest["model_definitions"][0]["columns"]} >= {"title", "status"}
    assert set(manifest["actions"]) == {"books"}


def test_frontend_files(catalog, admin):
    install(admin)
    response = admin.get(f"{API}/addons/helpdesk/frontend/remoteEntry.js")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == REMOTE_ENTRY
    assert "immutable" in response["Cache-Control"]
    assert "javascript" in response["Content-Type"]
    for bad in [
        "../manifest.json",
        "..%2Fmanifest.json",
        "%2E%2E/%2E%2E/manifest.json",
        "missing.js",
        "/etc/passwd",
        "a%00b.js",
        "x" * 5000,
    ]:
        assert admin.get(f"{API}/addons/helpdesk/frontend/{bad}").status_code == 404, bad
    admin.post(f"{API}/installations/helpdesk/disable")
    assert admin.get(f"{API}/addons/helpdesk/frontend/remoteEntry.js").status_code == 404


# ------------------------------------------------------------------------ tampered bundles


def _repack(archive, target, *, manifest_edit=None, contents_edit=None):
    manifest, contents = read_source(archive)
    if manifest_edit:
        manifest_edit(manifest)
    if contents_edit:
        contents_edit(contents)
    target.write_bytes(write_bundle(manifest, contents))
    return target


TAMPERINGS = {
    "changed file": (
        dict(contents_edit=lambda c: c.update({"frontend/remoteEntry.js": b"alert(1)"})),
        "checksum mismatch",
    ),
    "added file": (
        dict(contents_edit=lambda c: c.update({"backend/evil.wasm": b"\0asm"})),
        "undeclared file",
    ),
    "removed file": (dict(contents_edit=lambda c: c.pop("README.md")), "missing"),
    "edited manifest": (dict(manifest_edit=lambda m: m.update({"version": "9.9.9"})), "digest mismatch"),
    "unknown algorithm": (
        dict(manifest_edit=lambda m: m["signature"].update({"algorithm": "rsa"})),
        "unsupported algorithm",
    ),
    "unsigned": (dict(manifest_edit=lambda m: m.pop("signature")), "not signed"),
}


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_tampered_bundles_refused_and_nothing_installed(case, catalog, admin, tmp_path):
    edits, expected = TAMPERINGS[case]
    archive = _repack(catalog / "helpdesk-1.0.0.tar.gz", tmp_path / "t.tar.gz", **edits)
    with archive.open("rb") as handle:
        response = admin.post(f"{API}/installations/helpdesk", {"bundle": handle}, format="multipart")
    assert response.status_code == 400, response.content
    assert expected in response.json()["message"]
    assert response.json()["errors"]["bundle"] and response.json()["code"] == "invalid_signature"
    assert not Installation.objects.exists() and not table_exists("helpdesk")


def test_wrong_key_refused(catalog, admin, tmp_path):
    archive = Signer().signed_archive(write_source(tmp_path / "src2"), tmp_path / "w.tar.gz")
    with archive.open("rb") as handle:
        response = admin.post(f"{API}/installations/helpdesk", {"bundle": handle}, format="multipart")
    assert response.status_code == 400
    assert "does not verify under any trusted key" in response.json()["message"]
    assert not Installation.objects.exists()


def test_truncated_archive_refused(catalog, admin):
    data = (catalog / "helpdesk-1.0.0.tar.gz").read_bytes()
    response = admin.post(
        f"{API}/installations/helpdesk", {"bundle": io.BytesIO(data[: len(data) // 2])}, format="multipart"
    )
    assert response.status_code == 400
    assert "bundle" in response.json()["message"]
    assert not Installation.objects.exists() and not table_exists("helpdesk")


def test_unsigned_accepted_when_host_allows(catalog, admin, settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": True}
    archive = unsigned_archive(write_source(tmp_path / "u"), tmp_path / "u.tar.gz")
    with archive.open("rb") as handle:
        assert (
            admin.post(f"{API}/installations/helpdesk", {"bundle": handle}, format="multipart").status_code
            == 201
        )
