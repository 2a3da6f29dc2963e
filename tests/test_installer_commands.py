"""The installer's management commands: thin, one-line errors, no tracebacks."""

import json
import shutil
from io import StringIO

import pytest
from addon_fixtures import OWN_FIXTURES, OWN_INVALID
from django.core.management import CommandError, call_command

from metacore.models import Installation
from metacore.schema import ddl
from tests.installer_support import EXAMPLES, small_manifest, targz

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_install_list_disable_enable_uninstall():
    output = run("metacore_install", str(EXAMPLES / "tasks"))
    assert "installed tasks 1.0.0" in output and "projects, tasks" in output
    assert "tasks" in run("metacore_list") and "enabled" in run("metacore_list")
    assert json.loads(run("metacore_list", "--format", "json"))[0]["tables"] == ["projects", "tasks"]
    assert "is disabled" in run("metacore_disable", "tasks")
    assert "is enabled" in run("metacore_enable", "tasks")
    assert "kept" in run("metacore_uninstall", "tasks")
    assert Installation.objects.get().state == "uninstalled" and ddl.table_exists("tasks", "tasks")
    assert "dropped" in run("metacore_uninstall", "tasks", "--drop-data", "--noinput")
    assert not ddl.table_exists("tasks", "tasks") and "no addons installed" in run("metacore_list")


@pytest.mark.parametrize(
    "args, message",
    [
        (("metacore_install", "/nonexistent/bundle"), "no such file"),
        (("metacore_uninstall", "ghost"), "not installed"),
        (("metacore_enable", "ghost"), "not installed"),
        (("metacore_disable", "ghost"), "not installed"),
        (("metacore_install", str(EXAMPLES / "tasks"), "--settings-json", "[1"), "not valid JSON"),
    ],
)
def test_bad_input_is_a_one_line_command_error(args, message):
    with pytest.raises(CommandError, match=message) as error:
        run(*args)
    assert "\n" not in str(error.value)


def test_install_twice_and_invalid_manifest_are_command_errors():
    run("metacore_install", str(EXAMPLES / "tasks"))
    with pytest.raises(CommandError, match="already installed"):
        run("metacore_install", str(EXAMPLES / "tasks"))
    with pytest.raises(CommandError, match="invalid manifest"):
        run("metacore_install", str(OWN_FIXTURES / OWN_INVALID))


def test_install_examples_installs_each_bundle_once(tmp_path, settings):
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLES / "tasks", catalog / "tasks")
    (catalog / "demo-1.0.0.tar.gz").write_bytes(
        targz({"manifest.json": json.dumps(small_manifest()).encode()})
    )
    (catalog / "broken.tar.gz").write_bytes(b"not an archive")
    (catalog / "notes.txt").write_text("ignored")
    settings.METACORE = {**settings.METACORE, "BUNDLE_DIR": catalog}

    first = run("metacore_install_examples")
    assert "installed tasks 1.0.0" in first and "installed demo 1.0.0" in first and "broken.tar.gz" in first
    assert sorted(Installation.objects.values_list("key", flat=True)) == ["demo", "tasks"]
    second = run("metacore_install_examples")
    assert second.count("skipped (already installed)") == 2
    with pytest.raises(CommandError, match="1 bundle"):
        run("metacore_install_examples", "--strict")


def test_install_examples_needs_a_directory(settings):
    settings.METACORE = {**settings.METACORE, "BUNDLE_DIR": None}
    with pytest.raises(CommandError, match="BUNDLE_DIR"):
        run("metacore_install_examples")
