"""Per-organization installations: the package is host-wide, each organization has (or not)
its own installation of it; the registry answers per organization; host-wide installs from
the previous release carry over."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from metacore.context import CallContext
from metacore.errors import Conflict, NotFound
from metacore.kernel import get_kernel
from metacore.models import Installation, InstallJournal, OrganizationInstallation
from tests.installer_support import small_manifest

pytestmark = pytest.mark.django_db(transaction=True)

ORG_A = "aaaaaaaa-0000-4000-8000-00000000000a"
ORG_B = "bbbbbbbb-0000-4000-8000-00000000000b"
BEFORE = ("metacore", "0005_hub_connection")


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}
    yield
    installer = get_kernel().installer
    for row in Installation.objects.all():
        installer.uninstall(row.key, drop_data=True)


def bundle(tmp_path, key="notes", version="1.0.0", settings=None):
    manifest = small_manifest(key=key, version=version)
    if settings is not None:
        manifest["settings"] = settings
    directory = tmp_path / f"{key}-{version}"
    directory.mkdir()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


# ------------------------------------------------------------------ the data migration


def test_host_wide_installs_from_the_previous_release_carry_over():
    """A database at 0005 with an installation migrates forward; the installation keeps its
    settings, secret and state and is the host-wide one: every organization has it."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes("metacore")
    executor.migrate([BEFORE])
    try:
        old = executor.loader.project_state([BEFORE]).apps.get_model("metacore", "Installation")
        manifest = small_manifest(key="legacy")
        from metacore.manifest.parse import load_manifest

        old.objects.create(
            key="legacy",
            name="Legacy",
            version="1.0.0",
            state="disabled",
            manifest=load_manifest(manifest).model_dump(mode="json"),
            settings={"region": "eu"},
            secret_hash="f" * 64,
        )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
    finally:
        MigrationExecutor(connection).migrate(leaves)

    row = Installation.objects.get(key="legacy")
    assert (row.state, row.settings, row.secret_hash, row.every_organization) == (
        "disabled",
        {"region": "eu"},
        "f" * 64,
        True,
    )
    assert not OrganizationInstallation.objects.exists()
    registry = get_kernel().registry
    get_kernel().installer.enable("legacy")
    assert registry.enabled_for("legacy", ORG_A) and registry.enabled_for("legacy", None)
    Installation.objects.filter(key="legacy").delete()


# ------------------------------------------------------------------ installer and registry


def test_installing_for_one_organization_leaves_the_others_without_it(tmp_path):
    installer, registry = get_kernel().installer, get_kernel().registry
    result = installer.install(bundle(tmp_path), organization=ORG_A, context=CallContext.system())
    assert result.organization.organization == ORG_A and not result.installation.every_organization
    assert registry.enabled_for("notes", ORG_A)
    assert not registry.enabled_for("notes", ORG_B)
    assert not registry.enabled_for("notes", None)
    registry.resolve("notes", organization=ORG_A)
    with pytest.raises(NotFound):
        registry.resolve("notes", organization=ORG_B)
    assert [m.spec.table for m in registry.all_models(organization=ORG_B)] == []

    # B installs the package A has: no DDL, its own installation
    package = result.installation.bundle_path
    second = installer.install(package, organization=ORG_B)
    assert second.created_tables == [] and registry.enabled_for("notes", ORG_B)
    with pytest.raises(Conflict, match="already installed for organization"):
        installer.install(package, organization=ORG_B)

    installer.disable("notes", organization=ORG_A)
    assert not registry.enabled_for("notes", ORG_A) and registry.enabled_for("notes", ORG_B)
    installer.enable("notes", organization=ORG_A)
    assert registry.enabled_for("notes", ORG_A)

    journal = list(
        InstallJournal.objects.filter(addon_key="notes", ok=True)
        .order_by("id")
        .values_list("operation", "organization")
    )
    assert journal == [("install", ORG_A), ("install", ORG_B), ("disable", ORG_A), ("enable", ORG_A)]

    with pytest.raises(Conflict, match="other organizations"):
        installer.uninstall("notes", organization=ORG_B, drop_data=True)
    installer.uninstall("notes", organization=ORG_A)
    assert not registry.enabled_for("notes", ORG_A) and registry.enabled_for("notes", ORG_B)
    installer.uninstall("notes", organization=ORG_B)  # the last one: the package goes too
    assert Installation.objects.get(key="notes").state == "uninstalled"


def test_a_host_wide_install_is_every_organizations_and_each_may_disable_it(tmp_path):
    installer, registry = get_kernel().installer, get_kernel().registry
    installer.install(bundle(tmp_path))
    assert registry.enabled_for("notes", ORG_A) and registry.enabled_for("notes", ORG_B)
    assert registry.enabled_for("notes", None)
    with pytest.raises(Conflict, match="every organization"):
        installer.install(Installation.objects.get(key="notes").bundle_path, organization=ORG_A)
    with pytest.raises(Conflict, match="every organization"):
        installer.uninstall("notes", organization=ORG_A)

    installer.disable("notes", organization=ORG_A)
    assert not registry.enabled_for("notes", ORG_A) and registry.enabled_for("notes", ORG_B)
    assert registry.installed("notes").installed_for(ORG_A)

    installer.disable("notes")  # the host disables the package: nobody has it
    assert not registry.enabled_for("notes", ORG_B)
    installer.enable("notes")
    assert registry.enabled_for("notes", ORG_B) and not registry.enabled_for("notes", ORG_A)


def test_setting_defaults_apply_per_organization_in_both_formats(tmp_path):
    flat = [{"key": "region", "type": "string", "default_value": "eu"}, {"key": "limit", "type": "number"}]
    installer, registry = get_kernel().installer, get_kernel().registry
    installer.install(bundle(tmp_path, settings=flat), organization=ORG_A, settings={"limit": 3})
    addon = registry.installed("notes")
    assert addon.settings_for(ORG_A) == {"region": "eu", "limit": 3}
    assert addon.settings == {"region": "eu"}
    with pytest.raises(Exception, match="unknown setting"):
        installer.install(addon.bundle_path, organization=ORG_B, settings={"colour": "red"})
    with pytest.raises(Exception, match="invalid setting"):
        installer.install(addon.bundle_path, organization=ORG_B, settings={"limit": "many"})
