"""Bad bundles and failures in the middle of an install leave nothing behind: no table, no
schema, no row (checked by introspection, on SQLite and PostgreSQL, with real commits)."""

import json
import shutil
import tarfile
import threading
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from rest_framework.test import APIClient

from metacore.context import CallContext
from metacore.errors import Conflict, InvalidInput
from metacore.installer import service as installer_service
from metacore.installer.bundle import open_bundle
from metacore.installer.errors import InstallFailed
from metacore.kernel import get_kernel
from metacore.models import AppliedMigration, AuditRecord, Installation, InstallJournal
from metacore.schema import ddl
from metacore.schema.registry import read_revision
from tests.installer_support import EXAMPLES, small_manifest, targz

pytestmark = pytest.mark.django_db(transaction=True)
MANIFEST = json.dumps(small_manifest()).encode()


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    yield tmp_path / "data"
    for installation in Installation.objects.all():  # committed installs do not roll back
        get_kernel().installer.uninstall(installation.key, drop_data=True)


def assert_nothing_left(key, tables):
    assert not Installation.objects.filter(key=key).exists()
    assert [ddl.table_exists(key, t) for t in tables] == [False] * len(tables)
    assert ddl.addon_tables(key) == []
    assert not Permission.objects.filter(codename__startswith=f"{key}.").exists()
    assert not AppliedMigration.objects.filter(addon_key=key).exists()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [f"addon_{key}"])
            assert cursor.fetchone() is None


def archive(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def no_staging_left(data_dir):
    bundles = data_dir / "bundles"
    return not bundles.exists() or not any(p.name.startswith(".staging-") for p in bundles.iterdir())


BAD_ARCHIVES = {
    "traversal": (lambda: targz({"manifest.json": MANIFEST, "../evil.txt": b"x"}), "path traversal"),
    "nested traversal": (
        lambda: targz({"manifest.json": MANIFEST, "frontend/../../evil.txt": b"x"}),
        "path traversal",
    ),
    "absolute": (lambda: targz({"manifest.json": MANIFEST, "/tmp/evil.txt": b"x"}), "absolute path"),
    "symlink": (
        lambda: targz({"manifest.json": MANIFEST}, links=[("README.md", "/etc/passwd", tarfile.SYMTYPE)]),
        "links",
    ),
    "hardlink": (
        lambda: targz({"manifest.json": MANIFEST}, links=[("README.md", "manifest.json", tarfile.LNKTYPE)]),
        "links",
    ),
    "device": (
        lambda: targz({"manifest.json": MANIFEST}, links=[("dev", "", tarfile.CHRTYPE)]),
        "regular files",
    ),
    "no manifest": (lambda: targz({"README.md": b"hello"}), "no manifest.json"),
    "not gzip": (lambda: b"PK\x03\x04 this is a zip, not a tarball", "not a gzip"),
    "truncated gzip": (lambda: targz({"manifest.json": MANIFEST})[:40], "not a readable"),
    "manifest not json": (lambda: targz({"manifest.json": b"{nope"}), "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archives_are_refused_with_a_clear_error_and_leave_nothing(tmp_path, data_dir, case):
    build, message = BAD_ARCHIVES[case]
    path = archive(tmp_path, "demo-1.0.0.tar.gz", build())
    with pytest.raises(InvalidInput, match=message):
        get_kernel().installer.install(path)
    assert_nothing_left("demo", ["notes"])
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert no_staging_left(data_dir)
    journal = InstallJournal.objects.get()
    assert not journal.ok and journal.operation == "install" and message.split()[0] in journal.message


def test_oversize_bundles_are_refused(settings, tmp_path, data_dir):
    settings.METACORE = {**settings.METACORE, "MAX_BUNDLE_BYTES": 4096}
    bomb = targz({"manifest.json": MANIFEST, "frontend/big.js": b"0" * 100_000})  # compresses below the cap
    assert len(bomb) < 4096
    with pytest.raises(InvalidInput, match="exceeds the size limit"):
        get_kernel().installer.install(archive(tmp_path, "demo.tar.gz", bomb))
    directory = tmp_path / "demo"
    (directory / "frontend").mkdir(parents=True)
    (directory / "manifest.json").write_bytes(MANIFEST)
    (directory / "frontend" / "big.js").write_bytes(b"0" * 5000)
    with pytest.raises(InvalidInput, match="exceeds the size limit"):
        get_kernel().installer.install(directory)
    assert_nothing_left("demo", ["notes"])
    assert no_staging_left(data_dir)


def test_directory_bundles_with_links_are_refused(tmp_path):
    directory = tmp_path / "demo"
    directory.mkdir()
    (directory / "manifest.json").write_bytes(MANIFEST)
    (directory / "README.md").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInput, match="links are not allowed"):
        open_bundle(directory)


def test_archive_hashes_are_recorded(tmp_path):
    path = archive(
        tmp_path, "demo.tar.gz", targz({"manifest.json": MANIFEST, "migrations/0001_x.sql": b"SELECT 1;"})
    )
    bundle = open_bundle(path)
    import hashlib

    assert bundle.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert bundle.files["migrations/0001_x.sql"] == hashlib.sha256(b"SELECT 1;").hexdigest()
    assert (bundle.root / "manifest.json").is_file() and bundle.root.is_relative_to(tmp_path / "data")


@pytest.mark.parametrize("step", ["hook", "permissions", "revision"])
def test_a_failure_after_the_ddl_rolls_everything_back(monkeypatch, step):
    seen = {}

    def explode(*args, **kwargs):
        seen["tables"] = ddl.addon_tables("tasks")  # the DDL really ran before the failure
        raise RuntimeError(f"forced failure in {step}")

    target = {
        "hook": (installer_service, "run_lifecycle_hook"),
        "permissions": (installer_service, "create_addon_permissions"),
        "revision": (installer_service, "bump_registry_revision"),
    }[step]
    monkeypatch.setattr(*target, explode)
    revision = read_revision()
    with pytest.raises(InstallFailed, match=f"forced failure in {step}"):
        get_kernel().installer.install(EXAMPLES / "tasks")
    assert seen["tables"] == ["projects", "tasks"]
    assert_nothing_left("tasks", ["projects", "tasks"])
    assert read_revision() == revision
    journal = InstallJournal.objects.get(addon_key="tasks")
    assert not journal.ok and "forced failure" in journal.message
    assert not AuditRecord.objects.filter(kind="addon.install", details__ok=True).exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="bundle SQL runs on PostgreSQL only")
def test_a_failing_sql_migration_rolls_the_install_back(tmp_path):
    source = tmp_path / "demo"
    (source / "migrations").mkdir(parents=True)
    (source / "manifest.json").write_bytes(MANIFEST)
    (source / "migrations" / "0001_ok.sql").write_text("CREATE INDEX notes_body_idx ON notes (body);")
    (source / "migrations" / "0002_bad.sql").write_text("CREATE TABLE extra (id int);\nTHIS IS NOT SQL;")
    with pytest.raises(InvalidInput, match="0002_bad.sql, statement 2"):
        get_kernel().installer.install(source)
    assert_nothing_left("demo", ["notes", "extra"])


def test_a_successful_install_commits_and_publishes_once():
    from metacore.events import addon_changed

    received = []

    def receiver(event, **kwargs):
        received.append((event.addon, event.operation))

    addon_changed.connect(receiver)
    try:
        get_kernel().installer.install(EXAMPLES / "tasks")
        get_kernel().installer.uninstall("tasks")
    finally:
        addon_changed.disconnect(receiver)
    assert received == [("tasks", "install"), ("tasks", "uninstall")]
    assert ddl.table_exists("tasks", "tasks")


def test_bundle_sql_that_would_commit_early_is_refused_on_both_databases(tmp_path):
    source = tmp_path / "demo"
    (source / "migrations").mkdir(parents=True)
    (source / "manifest.json").write_bytes(MANIFEST)
    (source / "migrations" / "0001_sneaky.sql").write_text(
        "CREATE INDEX notes_body_idx ON notes (body);\nCOMMIT;"
    )
    with pytest.raises(InvalidInput, match="must not control the transaction"):
        get_kernel().installer.install(source)
    assert_nothing_left("demo", ["notes"])


# -- extracted files and server paths ------------------------------------------------------


def bundles_left(data_dir):
    """Everything under DATA_DIR/bundles (extracted copies, staging folders)."""
    bundles = data_dir / "bundles"
    return sorted(p.relative_to(bundles).as_posix() for p in bundles.rglob("*")) if bundles.exists() else []


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archive_errors_name_no_server_path(tmp_path, data_dir, case):
    admin = APIClient()
    admin.force_authenticate(User.objects.create_superuser("root", password=None))
    path = archive(tmp_path, "demo-1.0.0.tar.gz", BAD_ARCHIVES[case][0]())
    with path.open("rb") as upload:
        response = admin.post("/api/metacore/installations/demo", {"bundle": upload}, format="multipart")
    assert response.status_code == 400 and response.json()["success"] is False
    text = response.content.decode()
    for folder in (str(tmp_path), str(data_dir), str(data_dir.parent.parent), ".staging-"):
        assert folder not in text, (folder, text)
    assert bundles_left(data_dir) == []


def test_refused_and_failed_installs_remove_what_they_extracted(tmp_path, data_dir, monkeypatch):
    incompatible = tmp_path / "demo"
    incompatible.mkdir()
    (incompatible / "manifest.json").write_text(json.dumps({**small_manifest(), "kernel": ">=99.0.0"}))
    with pytest.raises(InvalidInput):
        get_kernel().installer.install(incompatible)
    assert bundles_left(data_dir) == []

    get_kernel().installer.install(EXAMPLES / "tasks")
    installed = bundles_left(data_dir)
    assert installed and all(p.split("/")[0] == "tasks" for p in installed)
    newer = tmp_path / "tasks"
    shutil.copytree(EXAMPLES / "tasks", newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["metadata"]["version"] = "9.0.0"
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Conflict, match="upgrade it"):
        get_kernel().installer.install(newer)
    with pytest.raises(Conflict, match="already installed"):
        get_kernel().installer.install(EXAMPLES / "tasks")
    assert bundles_left(data_dir) == installed  # the installed version's copy stays, the refused one is gone
    get_kernel().installer.uninstall("tasks", drop_data=True)

    monkeypatch.setattr(installer_service, "run_lifecycle_hook", lambda *a, **k: 1 / 0)
    with pytest.raises(InstallFailed):
        get_kernel().installer.install(EXAMPLES / "tasks")
    assert bundles_left(data_dir) == []  # no installation points at the copy any more: gone with the failure


def test_concurrent_installs_of_one_addon_give_the_loser_a_conflict(tmp_path, data_dir, monkeypatch):
    """Two real threads install the same new addon at once; the schema creation is slowed
    down so both are inside the install together. One wins (201), the other gets 409."""
    original = ddl.ensure_schema

    def slow_ensure_schema(*args, **kwargs):
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(ddl, "ensure_schema", slow_ensure_schema)
    root = User.objects.create_superuser("root", password=None)
    source = archive(tmp_path, "demo-1.0.0.tar.gz", targz({"manifest.json": MANIFEST}))
    barrier = threading.Barrier(2)
    statuses, bodies = [], []

    def install():
        client = APIClient()
        client.force_authenticate(root)
        try:
            barrier.wait()
            with source.open("rb") as upload:
                response = client.post(
                    "/api/metacore/installations/demo", {"bundle": upload}, format="multipart"
                )
            statuses.append(response.status_code)
            bodies.append(response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=install) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201, 409], bodies
    loser = next(b for b in bodies if b.get("success") is False)
    assert "already installed" in loser["message"] and "IntegrityError" not in json.dumps(loser)
    assert Installation.objects.filter(key="demo").count() == 1


@pytest.mark.parametrize("operation", ["disable", "uninstall"])
def test_every_lifecycle_failure_is_journaled_and_audited_alike(monkeypatch, operation):
    get_kernel().installer.install(EXAMPLES / "tasks")

    def explode(*args, **kwargs):
        raise RuntimeError(f"forced failure in {operation}")

    with (
        monkeypatch.context() as patched,
        pytest.raises(InstallFailed, match=f"forced failure in {operation}"),
    ):
        patched.setattr(installer_service, "bump_registry_revision", explode)
        getattr(get_kernel().installer, operation)("tasks", context=CallContext.system())
    assert Installation.objects.get(key="tasks").state == Installation.State.ENABLED  # rolled back
    journal = InstallJournal.objects.get(addon_key="tasks", operation=operation)
    assert (journal.ok, journal.actor) == (False, "cli") and "forced failure" in journal.message
    audit = AuditRecord.objects.get(kind=f"addon.{operation}")
    assert audit.details["ok"] is False and "forced failure" in audit.reason
