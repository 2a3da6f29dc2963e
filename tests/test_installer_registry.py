"""The runtime model registry: name resolution, addons kept apart, rebuilds without
warnings or leaks, and freshness across processes."""

import gc
import json
import os
import subprocess
import sys
import warnings
import weakref

import pytest
from django.apps import apps as global_apps
from django.db import connection

from metacore.errors import Conflict, NotFound
from metacore.kernel import get_kernel
from metacore.models import Installation
from metacore.schema.naming import physical_table
from metacore.schema.registry import ModelRegistry
from tests.installer_support import EXAMPLES, ROOT, small_manifest
from tests.livekit import test_database_url as database_url

ORG = "aaaaaaaa-0000-4000-8000-000000000001"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}


def bundle(tmp_path, key, table="tickets", model_key="Tickets"):
    manifest = small_manifest(key=key)
    manifest["model_definitions"][0].update(table_name=table, model_key=model_key, label=model_key)
    directory = tmp_path / key
    directory.mkdir()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.mark.django_db
def test_two_addons_with_the_same_table_stay_apart(tmp_path):
    installer, registry = get_kernel().installer, get_kernel().registry
    installer.install(bundle(tmp_path, "helpdesk"))
    installer.install(bundle(tmp_path, "crm"))

    with pytest.raises(Conflict) as ambiguous:
        registry.resolve("tickets")
    assert ambiguous.value.status == 409
    assert ambiguous.value.errors["model"] == ["crm.Tickets", "helpdesk.Tickets"]
    assert "crm.Tickets" in ambiguous.value.message

    helpdesk, crm = registry.resolve("HelpDesk.TICKETS"), registry.resolve("crm.tickets")
    assert (helpdesk.installation_key, crm.installation_key) == ("helpdesk", "crm")
    assert helpdesk.model_class._meta.db_table == physical_table("helpdesk", "tickets", connection.vendor)
    assert helpdesk.model_class._meta.db_table != crm.model_class._meta.db_table
    helpdesk.model_class.objects.create(title="only in helpdesk", organization_id=ORG)
    assert crm.model_class.objects.count() == 0
    assert registry.model_for("helpdesk", "tickets") is helpdesk.model_class
    with pytest.raises(NotFound):
        registry.resolve("nothing")
    with pytest.raises(NotFound):
        registry.model_for("crm", "nothing")


@pytest.mark.django_db
def test_host_table_names_cannot_collide(tmp_path):
    from django.contrib.auth.models import User

    users = User.objects.count()
    get_kernel().installer.install(bundle(tmp_path, "sneaky", table="auth_user", model_key="auth_user"))
    model = get_kernel().registry.resolve("auth_user").model_class
    assert model._meta.db_table != "auth_user"
    model.objects.create(title="x", organization_id=ORG)
    assert User.objects.count() == users and model.objects.count() == 1


@pytest.mark.django_db
def test_rebuilds_neither_warn_nor_leak_into_the_global_registry(tmp_path):
    installer, registry = get_kernel().installer, get_kernel().registry
    installer.install(EXAMPLES / "tasks")
    first = registry.resolve("tasks").model_class
    old_apps = weakref.ref(first._meta.apps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            installer.disable("tasks")
            with pytest.raises(NotFound):
                registry.resolve("tasks.Task")
            installer.enable("tasks")
            registry.resolve("tasks.Task")
    assert registry.resolve("tasks").model_class is not first
    assert not any(label.startswith("addon_") for label in global_apps.all_models)
    del first
    gc.collect()
    assert old_apps() is None


@pytest.mark.django_db
def test_unchanged_addons_are_not_rebuilt(tmp_path):
    installer, registry = get_kernel().installer, get_kernel().registry
    installer.install(EXAMPLES / "tasks")
    tasks = registry.resolve("tasks").model_class
    installer.install(bundle(tmp_path, "other"))
    assert registry.resolve("tasks").model_class is tasks


@pytest.mark.django_db
def test_a_restarted_process_builds_models_from_stored_manifests(tmp_path):
    get_kernel().installer.install(EXAMPLES / "tasks")
    fresh = ModelRegistry()  # what a new process starts with
    resolved = fresh.resolve("projects")
    assert resolved.installation_key == "tasks" and resolved.spec.key == "Project"
    assert [m.spec.table for m in fresh.all_models()] == ["projects", "tasks"]


def manage(*args):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "sandbox_project.settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.django_db(transaction=True)
def test_another_process_install_is_seen_on_the_next_resolve():
    registry = get_kernel().registry
    with pytest.raises(NotFound):
        registry.resolve("tasks")
    try:
        manage("metacore_install", str(EXAMPLES / "tasks"))
        assert registry.resolve("tasks").installation_key == "tasks"
        manage("metacore_uninstall", "tasks", "--drop-data", "--noinput")
        with pytest.raises(NotFound):
            registry.resolve("projects")
    finally:
        if Installation.objects.filter(key="tasks").exists():
            get_kernel().installer.uninstall("tasks", drop_data=True)
