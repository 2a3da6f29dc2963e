"""Installing, uninstalling and reinstalling real bundles on the test database, with the
result read back by introspection (run on SQLite and PostgreSQL)."""

import pytest
from addon_fixtures import OWN_FIXTURES, bundle_params
from django.contrib.auth.models import Permission
from django.db import connection

from metacore.errors import Conflict, InvalidInput, NotFound
from metacore.kernel import get_kernel
from metacore.models import AppliedMigration, AuditRecord, Installation, InstallJournal
from metacore.permissions.naming import model_permission
from metacore.schema import ddl
from metacore.schema.registry import in_space
from tests.installer_support import EXAMPLES, assert_schema_matches, manifest_of, small_manifest

pytestmark = pytest.mark.django_db
ORG = "aaaaaaaa-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    return tmp_path / "data"


@pytest.fixture
def installer():
    return get_kernel().installer


def write_bundle(directory, manifest, files=None):
    import json

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    for name, text in (files or {}).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


@pytest.mark.parametrize("path", bundle_params())
def test_every_fixture_installs_with_its_declared_schema_and_drops_cleanly(installer, path):
    manifest = manifest_of(path)
    result = installer.install(path)

    assert result.key == manifest.key
    tables = manifest
    if manifest.tenant_isolation == "schema":  # no shared tables: an organization's copy has them
        assert result.created_tables == [] and ddl.addon_tables(manifest.key) == []
        assert {m.status for m in result.migrations} <= {"checked"}
        tables = in_space(manifest, get_kernel().tenant_schemas.provision(manifest.key, ORG).space)
    else:
        assert result.created_tables == [m.table for m in manifest.models]
    assert_schema_matches(tables, ddl.describe_table)
    installation = Installation.objects.get(key=manifest.key)
    assert installation.state == "enabled" and installation.version == manifest.version
    assert installation.manifest == manifest.model_dump(mode="json")
    for spec in manifest.models:
        assert Permission.objects.filter(codename=model_permission(manifest.key, spec.table, "read")).exists()
    for migration in AppliedMigration.objects.filter(addon_key=tables.key):
        assert migration.status in (
            ("applied", "partial") if connection.vendor == "postgresql" else ("skipped",)
        )

    installer.uninstall(manifest.key, drop_data=True)
    assert [ddl.describe_table(tables.key, m.table) for m in manifest.models] == [None] * len(manifest.models)
    assert ddl.addon_tables(tables.key) == []
    assert not Installation.objects.filter(key=manifest.key).exists()
    assert not Permission.objects.filter(codename__startswith=f"{manifest.key}.").exists()
    assert not AppliedMigration.objects.filter(addon_key__in=[manifest.key, tables.key]).exists()


def test_example_bundle_has_related_tables_and_cascades(installer):
    result = installer.install(EXAMPLES / "tasks")
    assert result.created_tables == ["projects", "tasks"]
    assert_schema_matches(result.installation and manifest_of(EXAMPLES / "tasks"), ddl.describe_table)
    registry = get_kernel().registry
    Project, Task = registry.model_for("tasks", "projects"), registry.model_for("tasks", "tasks")
    org = ORG
    project = Project.objects.create(organization_id=org, name="Launch")
    Task.objects.create(organization_id=org, project_id=project.id, title="Write docs")
    assert Task.objects.get().project_id == project.id and Task.objects.get().status == "todo"
    project.delete()
    assert Task.objects.count() == 0


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="bundle SQL runs on PostgreSQL only")
def test_sql_migrations_run_in_the_addon_schema_and_skip_contradicting_statements(installer):
    installer.install(OWN_FIXTURES / "library")  # schema-per-tenant: the SQL runs in each copy
    space = get_kernel().tenant_schemas.provision("library", ORG).space
    info = ddl.describe_table(space, "books")
    assert info.index_on("isbn") is not None and any(i.name == "books_isbn_idx" for i in info.indexes)
    record = AppliedMigration.objects.get(addon_key=space, name="0001_init.sql")
    assert record.status == "partial" and len(record.checksum) == 64
    assert "undefined column" in record.reason and "org_id" in record.reason
    with connection.cursor() as cursor:  # the search_path of the transaction was restored
        cursor.execute("SHOW search_path")
        assert "addon_library" not in cursor.fetchone()[0]


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite only")
def test_sql_migrations_are_recorded_as_skipped_on_sqlite(installer):
    installer.install(OWN_FIXTURES / "fieldservice")  # schema-per-tenant: they run in each copy
    copy = get_kernel().tenant_schemas.provision("fieldservice", ORG)
    record = AppliedMigration.objects.get(addon_key=copy.space)
    assert record.status == "skipped" and "PostgreSQL" in record.reason


def test_installing_the_same_version_twice_is_a_clear_conflict(installer, tmp_path):
    source = write_bundle(tmp_path / "demo", small_manifest())
    installer.install(source)
    with pytest.raises(Conflict, match="demo 1.0.0 is already installed"):
        installer.install(source)
    newer = write_bundle(tmp_path / "demo2", small_manifest(version="1.1.0"))
    with pytest.raises(Conflict, match="upgrade"):
        installer.install(newer)
    assert InstallJournal.objects.filter(addon_key="demo", ok=False).count() == 2


def test_uninstall_keeps_rows_and_a_reinstall_finds_them(installer, tmp_path):
    source = write_bundle(tmp_path / "demo", small_manifest())
    installer.install(source)
    Notes = get_kernel().registry.model_for("demo", "notes")
    Notes.objects.create(title="kept", organization_id=ORG)

    installer.uninstall("demo")
    assert Installation.objects.get(key="demo").state == "uninstalled"
    assert ddl.table_exists("demo", "notes")
    with pytest.raises(NotFound):
        get_kernel().registry.resolve("notes")
    with pytest.raises(NotFound):
        installer.uninstall("demo")

    result = installer.install(source)
    assert result.adopted_tables == ["notes"] and result.created_tables == []
    assert result.installation.revision == 2
    Notes = get_kernel().registry.model_for("demo", "notes")
    assert list(Notes.objects.values_list("title", flat=True)) == ["kept"]


def test_reinstall_creates_tables_added_since(installer, tmp_path):
    installer.install(write_bundle(tmp_path / "demo", small_manifest()))
    installer.uninstall("demo")
    extra = {
        "table_name": "tags",
        "model_key": "tags",
        "label": "Tags",
        "columns": [{"name": "name", "type": "string"}],
    }
    result = installer.install(
        write_bundle(tmp_path / "demo2", small_manifest(version="1.1.0", extra_models=[extra]))
    )
    assert result.adopted_tables == ["notes"] and result.created_tables == ["tags"]


def test_reinstall_refuses_a_different_schema_for_kept_tables(installer, tmp_path):
    installer.install(write_bundle(tmp_path / "demo", small_manifest()))
    get_kernel().registry.model_for("demo", "notes").objects.create(title="kept", organization_id=ORG)
    installer.uninstall("demo")
    changed = small_manifest(version="2.0.0")
    changed["model_definitions"][0]["columns"][0]["size"] = 20
    with pytest.raises(Conflict, match="declares table\\(s\\) notes differently"):
        installer.install(write_bundle(tmp_path / "demo2", changed))
    assert Installation.objects.get(key="demo").state == "uninstalled"
    assert ddl.describe_table("demo", "notes").columns["title"].max_length == 80


def test_drop_data_also_drops_tables_an_older_version_left(installer, tmp_path):
    extra = {
        "table_name": "tags",
        "model_key": "tags",
        "label": "Tags",
        "columns": [{"name": "name", "type": "string"}],
    }
    installer.install(write_bundle(tmp_path / "demo", small_manifest(extra_models=[extra])))
    installer.uninstall("demo")
    installer.install(write_bundle(tmp_path / "demo2", small_manifest(version="1.1.0")))
    assert ddl.addon_tables("demo") == ["notes", "tags"]
    installer.uninstall("demo", drop_data=True)
    assert ddl.addon_tables("demo") == []


def test_enable_disable_flip_what_the_registry_serves(installer, tmp_path):
    installer.install(write_bundle(tmp_path / "demo", small_manifest()))
    registry = get_kernel().registry
    assert registry.resolve("demo.notes").spec.table == "notes"
    installer.disable("demo")
    assert Installation.objects.get(key="demo").state == "disabled"
    with pytest.raises(NotFound):
        registry.resolve("notes")
    assert ddl.table_exists("demo", "notes")
    installer.enable("demo")
    assert registry.resolve("Notes").installation_key == "demo"
    assert list(
        InstallJournal.objects.filter(addon_key="demo").order_by("id").values_list("operation", flat=True)
    ) == [
        "install",
        "disable",
        "enable",
    ]
    kinds = set(AuditRecord.objects.filter(addon="demo").values_list("kind", flat=True))
    assert {"addon.install", "addon.disable", "addon.enable"} <= kinds


def test_enable_of_an_unknown_addon_is_not_found(installer):
    with pytest.raises(NotFound):
        installer.enable("ghost")


def test_incompatible_kernel_and_bad_capabilities_are_refused(installer, tmp_path):
    too_new = small_manifest(key="future")
    too_new["kernel"] = ">=4.0.0"
    with pytest.raises(InvalidInput, match="incompatible addon"):
        installer.install(write_bundle(tmp_path / "future", too_new))
    greedy = small_manifest(key="greedy")
    greedy["capabilities"] = [{"kind": "db:write", "target": "*", "reason": "everything"}]
    with pytest.raises(InvalidInput, match="over-broad"):
        installer.install(write_bundle(tmp_path / "greedy", greedy))
    assert not Installation.objects.exists()
    assert ddl.addon_tables("future") == [] and ddl.addon_tables("greedy") == []


def test_template_bundle_takes_its_key_from_the_directory_name(installer):
    result = installer.install(OWN_FIXTURES / "storefront-template")
    assert result.key == "storefront_template"
    assert result.created_tables == ["storefront_template_products"]
