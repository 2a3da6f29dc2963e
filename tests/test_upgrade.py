"""Upgrades: plan, apply, data survival, refusals and rollbacks, on SQLite and PostgreSQL.

Each scenario installs version 1.0.0 of a small flat-format addon, writes rows, upgrades to
a changed manifest and asserts the schema by introspection and every pre-existing value.
"""

import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel
from metacore.models import Installation, InstallJournal, RegistryState
from metacore.schema import ddl

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "upg"
ORG = uuid.UUID("0a0a0a0a-0000-4000-8000-00000000000a")  # the tables are per organization (shared tenancy)


def column(name, type_, **extra):
    return {"name": name, "type": type_, **extra}


TICKETS_V1 = [
    column("subject", "string", size=200, required=True),
    column("body", "text"),
    column("points", "int"),
    column("code", "string", size=20),
]
NOTES_V1 = [column("note", "text")]


def write_bundle(tmp_path, version, tickets, notes=NOTES_V1, extra_models=(), **manifest_extra):
    root = tmp_path / f"{KEY}-{version}-{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    models = [{"table_name": "tickets", "model_key": "tickets", "label": "Tickets", "columns": tickets}]
    if notes is not None:
        models.append({"table_name": "notes", "model_key": "notes", "label": "Notes", "columns": notes})
    models += list(extra_models)
    manifest = {
        "key": KEY,
        "name": "Upgrade test",
        "version": version,
        "kernel": ">=3.0.0 <4.0.0",
        "model_definitions": models,
        **manifest_extra,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def tickets_model():
    return get_kernel().registry.resolve(f"{KEY}.tickets").model_class


@pytest.fixture
def installed(tmp_path):
    get_kernel().installer.install(write_bundle(tmp_path, "1.0.0", TICKETS_V1))
    model = tickets_model()
    ids = []
    for i, (subject, points, code) in enumerate(
        [("short", 1, "A"), ("a much longer subject line", 2, "B"), ("mid", None, None)]
    ):
        row = model.objects.create(
            organization_id=ORG, subject=subject, body=f"body {i}", points=points, code=code
        )
        ids.append(row.pk)
    yield ids
    get_kernel().installer.uninstall(KEY, drop_data=True)


def rows_by_id():
    return {str(r["id"]): r for r in tickets_model().objects.values()}


def assert_rows_kept(before, columns=("subject", "body", "points", "code")):
    after = rows_by_id()
    assert set(after) == set(before)
    for row_id, row in before.items():
        for name in columns:
            if name in after[row_id]:
                assert after[row_id][name] == row[name], (row_id, name)


def describe(table="tickets"):
    return ddl.describe_table(KEY, table)


def test_plan_touches_nothing_and_lists_steps_with_sql(tmp_path, installed, capsys):
    revision = RegistryState.objects.get().revision
    new = write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    call_command("metacore_plan", str(new))
    out = capsys.readouterr().out
    assert "[safe] add column tickets.due_at" in out
    assert "SQL:" in out and "due_at" in out.split("SQL:")[1]
    call_command("metacore_plan", str(new), "--format", "json")
    plan = json.loads(capsys.readouterr().out)
    assert plan["steps"][0]["action"] == "add_column" and plan["steps"][0]["safety"] == "safe"
    assert "due_at" not in describe().columns
    assert RegistryState.objects.get().revision == revision
    assert Installation.objects.get(key=KEY).version == "1.0.0"


def test_plan_sql_runs_as_printed(tmp_path, installed):
    """A DBA can apply the plan's SQL by hand: on PostgreSQL it begins by naming the addon's
    schema, since the statements name the tables bare."""
    new = write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    plan = get_kernel().installer.plan(new)
    with connection.cursor() as cursor:
        for statement in plan.sql:
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            cursor.execute("SET search_path TO public")
    assert "due_at" in describe().columns


def test_add_nullable_column_keeps_rows_and_bumps_version(tmp_path, installed):
    before = rows_by_id()
    revision = RegistryState.objects.get().revision
    call_command(
        "metacore_upgrade", str(write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")]))
    )
    info = describe()
    assert info.columns["due_at"].nullable
    assert_rows_kept(before)
    assert Installation.objects.get(key=KEY).version == "1.1.0"
    assert RegistryState.objects.get().revision > revision
    assert tickets_model()._meta.get_field("due_at")  # the registry serves the new schema
    assert InstallJournal.objects.filter(addon_key=KEY, operation="upgrade", ok=True).exists()


def test_add_table_and_index_and_reference(tmp_path, installed):
    before = rows_by_id()
    tickets = [dict(c, index=True) if c["name"] == "code" else c for c in TICKETS_V1]
    tickets.append(column("tag_id", "uuid", references="tags"))
    tags = {
        "table_name": "tags",
        "model_key": "tags",
        "label": "Tags",
        "columns": [column("name", "string", size=40)],
    }
    get_kernel().installer.upgrade(write_bundle(tmp_path, "1.1.0", tickets, extra_models=[tags]))
    assert describe("tags") is not None
    info = describe()
    assert info.index_on("code") is not None
    assert "tag_id" in info.columns
    assert_rows_kept(before)


def test_drop_column_is_destructive_and_refused_without_flag(tmp_path, installed):
    bundle = write_bundle(tmp_path, "1.1.0", [c for c in TICKETS_V1 if c["name"] != "body"])
    with pytest.raises(CommandError, match=r"destructive.*drop column tickets\.body"):
        call_command("metacore_upgrade", str(bundle))
    assert "body" in describe().columns and Installation.objects.get(key=KEY).version == "1.0.0"
    before = rows_by_id()
    call_command("metacore_upgrade", str(bundle), "--allow-destructive")
    assert "body" not in describe().columns
    assert_rows_kept(before, columns=("subject", "points", "code"))


def test_drop_table_is_destructive(tmp_path, installed):
    bundle = write_bundle(tmp_path, "1.1.0", TICKETS_V1, notes=None)
    plan = get_kernel().installer.plan(bundle)
    assert plan.destructive[0] == "drop table notes (0 rows)"
    assert "drop permission upg.notes.read (and its grants)" in plan.destructive
    get_kernel().installer.upgrade(bundle, allow_destructive=True)
    assert describe("notes") is None


def test_widening_changes_are_safe_and_keep_values(tmp_path, installed):
    before = rows_by_id()
    tickets = [
        column("subject", "string", size=400, required=True),  # size up
        column("body", "text"),
        column("points", "bigint"),  # int -> bigint
        column("code", "text"),  # string -> text
    ]
    plan = get_kernel().installer.plan(write_bundle(tmp_path, "1.1.0", tickets))
    assert {s.safety for s in plan.steps} == {"safe"}
    get_kernel().installer.upgrade(write_bundle(tmp_path, "1.2.0", tickets))
    info = describe()
    if connection.vendor == "postgresql":
        assert info.columns["subject"].max_length == 400
        assert info.columns["points"].type == "bigint"
        assert info.columns["code"].type == "text"
    assert_rows_kept(before)


def test_narrowing_size_is_checked_against_the_data(tmp_path, installed):
    tickets = [dict(c, size=10) if c["name"] == "subject" else c for c in TICKETS_V1]
    bundle = write_bundle(tmp_path, "1.1.0", tickets)
    plan = get_kernel().installer.plan(bundle)
    assert plan.blocked == ["1 row in tickets.subject is longer than 10"]
    with pytest.raises(MetacoreError, match="1 row in tickets.subject is longer than 10"):
        get_kernel().installer.upgrade(bundle, allow_destructive=True)
    tickets_model().objects.filter(subject__startswith="a much").update(subject="shortened")
    get_kernel().installer.upgrade(bundle, allow_destructive=True)
    if connection.vendor == "postgresql":
        assert describe().columns["subject"].max_length == 10


def test_not_null_change_is_checked_for_nulls(tmp_path, installed):
    tickets = [dict(c, required=True) if c["name"] == "points" else c for c in TICKETS_V1]
    bundle = write_bundle(tmp_path, "1.1.0", tickets)
    plan = get_kernel().installer.plan(bundle)
    assert [s.safety for s in plan.steps] == ["needs-data-check"]
    assert plan.blocked == ["1 row in tickets.points is null"]
    with pytest.raises(CommandError, match="BLOCKED: 1 row in tickets.points is null") as blocked:
        call_command("metacore_plan", str(bundle))
    assert blocked.value.returncode == 3
    tickets_model().objects.filter(points__isnull=True).update(points=0)
    before = rows_by_id()
    get_kernel().installer.upgrade(bundle)
    assert not describe().columns["points"].nullable
    assert_rows_kept(before)


def test_unique_change_is_checked_for_duplicates(tmp_path, installed):
    tickets_model().objects.create(organization_id=ORG, subject="dup", code="A")
    tickets = [dict(c, unique=True) if c["name"] == "code" else c for c in TICKETS_V1]
    bundle = write_bundle(tmp_path, "1.1.0", tickets)
    assert get_kernel().installer.plan(bundle).blocked == ["1 value in tickets.code is duplicated"]
    tickets_model().objects.filter(subject="dup").delete()
    get_kernel().installer.upgrade(bundle)
    assert describe().index_on("code", unique=True) is not None
    # and back: dropping the unique constraint is safe
    get_kernel().installer.upgrade(write_bundle(tmp_path, "1.2.0", TICKETS_V1))
    assert describe().index_on("code", unique=True) is None


def test_default_change_is_safe(tmp_path, installed):
    before = rows_by_id()
    tickets = [dict(c, default=5) if c["name"] == "points" else c for c in TICKETS_V1]
    get_kernel().installer.upgrade(write_bundle(tmp_path, "1.1.0", tickets))
    assert_rows_kept(before)
    row = tickets_model().objects.create(organization_id=ORG, subject="new")
    assert tickets_model().objects.get(pk=row.pk).points == 5


def test_not_null_column_without_default_refused_on_non_empty_table(tmp_path, installed):
    bundle = write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("owner", "string", required=True)])
    with pytest.raises(
        MetacoreError, match="cannot add NOT NULL column tickets.owner without a default: tickets has 3 rows"
    ):
        get_kernel().installer.upgrade(bundle)
    assert "owner" not in describe().columns
    with_default = write_bundle(
        tmp_path, "1.1.1", TICKETS_V1 + [column("owner", "string", required=True, default="nobody")]
    )
    get_kernel().installer.upgrade(with_default)
    assert set(tickets_model().objects.values_list("owner", flat=True)) == {"nobody"}


def test_rename_column_and_table_with_hints_keep_data(tmp_path, installed):
    before = rows_by_id()
    tickets = [
        dict(c, name="title", renamed_from="subject") if c["name"] == "subject" else c for c in TICKETS_V1
    ]
    bundle = write_bundle(tmp_path, "1.1.0", tickets)
    plan = get_kernel().installer.plan(bundle)
    assert [s.words for s in plan.steps] == ["rename column tickets.subject to title"]
    get_kernel().installer.upgrade(bundle)
    titles = dict(tickets_model().objects.values_list("id", "title"))
    assert {str(k): v for k, v in titles.items()} == {k: r["subject"] for k, r in before.items()}

    notes = get_kernel().registry.resolve(f"{KEY}.notes").model_class
    notes.objects.create(organization_id=ORG, note="keep me")
    models = [
        {
            "table_name": "memos",
            "model_key": "memos",
            "label": "Memos",
            "renamed_from": "notes",
            "columns": NOTES_V1,
        }
    ]
    renamed = write_bundle(tmp_path, "1.2.0", tickets, notes=None, extra_models=models)
    plan = get_kernel().installer.plan(renamed)
    assert [s.words for s in plan.steps][0] == "rename table notes to memos"
    assert "rename permission upg.notes.read to upg.memos.read (grants kept)" in [s.words for s in plan.steps]
    assert plan.destructive == []
    get_kernel().installer.upgrade(renamed)
    assert describe("notes") is None and describe("memos") is not None
    memos = get_kernel().registry.resolve(f"{KEY}.memos").model_class
    assert list(memos.objects.values_list("note", flat=True)) == ["keep me"]


def test_rename_without_hint_is_a_destructive_drop_and_add(tmp_path, installed):
    tickets = [dict(c, name="title") if c["name"] == "subject" else c for c in TICKETS_V1]
    tickets = [dict(c, required=False) for c in tickets]
    plan = get_kernel().installer.plan(write_bundle(tmp_path, "1.1.0", tickets))
    assert plan.destructive == ["drop column tickets.subject"]


def test_permissions_and_capabilities_follow_the_manifest(tmp_path, installed):
    from django.contrib.auth.models import Permission

    bundle = write_bundle(
        tmp_path,
        "1.1.0",
        TICKETS_V1,
        permissions=[{"key": "tickets.approve", "label": "Approve"}],
        capabilities=[{"kind": "event:emit", "target": "upg.*", "reason": "notify"}],
    )
    words = [s.words for s in get_kernel().installer.plan(bundle).steps]
    assert "grant capability event:emit upg.*" in words
    assert any(w.startswith("add permission upg.tickets.approve") for w in words)
    assert not get_kernel().enforcer.allows(KEY, "event:emit", "upg.created")
    get_kernel().installer.upgrade(bundle)
    assert Permission.objects.filter(codename="upg.tickets.approve").exists()
    assert Installation.objects.get(key=KEY).capabilities[0]["target"] == "upg.*"
    assert get_kernel().enforcer.check(KEY, "event:emit", "upg.created")  # the next check


@pytest.mark.parametrize("version", ["1.0.0", "0.9.0"])
def test_same_or_lower_version_refused_unless_forced(tmp_path, installed, version):
    bundle = write_bundle(tmp_path, version, TICKETS_V1 + [column("extra", "text")])
    with pytest.raises(CommandError, match="use --force"):
        call_command("metacore_upgrade", str(bundle))
    call_command("metacore_upgrade", str(bundle), "--force")
    assert "extra" in describe().columns


def test_incompatible_kernel_refused(tmp_path, installed):
    bundle = write_bundle(tmp_path, "1.1.0", TICKETS_V1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["kernel"] = ">=9.0.0"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MetacoreError, match="requires kernel"):
        get_kernel().installer.upgrade(bundle)


# -- rollbacks: the old schema, data and manifest stay, and are still served ---------------


def assert_still_v1(before):
    assert Installation.objects.get(key=KEY).version == "1.0.0"
    info = describe()
    assert "due_at" not in info.columns and "body" in info.columns
    assert_rows_kept(before)
    assert InstallJournal.objects.filter(addon_key=KEY, operation="upgrade", ok=False).exists()


def test_rollback_when_the_ddl_fails(tmp_path, installed):
    before = rows_by_id()
    # text -> int over rows holding words: the ALTER (PostgreSQL) or the table copy
    # (SQLite keeps the text; the check below forces a failure through a bad reference).
    tickets = TICKETS_V1 + [column("due_at", "timestamp")]
    tickets = [dict(c, type="int") if c["name"] == "body" else c for c in tickets]
    bundle = write_bundle(tmp_path, "1.1.0", tickets)
    if connection.vendor == "postgresql":
        with pytest.raises(MetacoreError):
            get_kernel().installer.upgrade(bundle, allow_destructive=True)
    else:
        from metacore.schema import diff

        original = diff.run_steps

        def failing(old, steps, editor):
            original(old, steps, editor)
            editor.execute("SELECT * FROM no_such_table")

        import metacore.installer.upgrade as upgrade_module

        upgrade_module.run_steps = failing
        try:
            with pytest.raises(MetacoreError):
                get_kernel().installer.upgrade(bundle, allow_destructive=True)
        finally:
            upgrade_module.run_steps = original
    assert_still_v1(before)


def test_rollback_when_a_data_check_fails(tmp_path, installed):
    before = rows_by_id()
    tickets = TICKETS_V1 + [column("due_at", "timestamp")]
    tickets = [dict(c, size=5) if c["name"] == "subject" else c for c in tickets]
    with pytest.raises(MetacoreError, match="longer than 5"):
        get_kernel().installer.upgrade(write_bundle(tmp_path, "1.1.0", tickets), allow_destructive=True)
    assert_still_v1(before)


def test_rollback_when_the_hook_fails(tmp_path, installed, monkeypatch):
    before = rows_by_id()

    def failing_hook(sandbox, installation, bundle, hook_name, context):
        if hook_name == "on_upgrade":
            raise RuntimeError("on_upgrade trapped")

    monkeypatch.setattr("metacore.installer.upgrade.run_lifecycle_hook", failing_hook)
    with pytest.raises(MetacoreError, match="on_upgrade trapped"):
        get_kernel().installer.upgrade(
            write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
        )
    assert_still_v1(before)
    assert tickets_model().objects.count() == 3  # the old schema is still served


def test_rollback_when_a_sql_migration_fails(tmp_path, installed):
    if connection.vendor != "postgresql":
        pytest.skip("bundle SQL migrations run on PostgreSQL only (recorded as skipped on SQLite)")
    before = rows_by_id()
    bundle = write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    (bundle / "migrations").mkdir()
    (bundle / "migrations" / "0002_bad.sql").write_text(
        "CREATE INDEX bad_idx ON tickets (due_at) WHERE nonsense(;"
    )
    with pytest.raises(MetacoreError):
        get_kernel().installer.upgrade(bundle)
    assert_still_v1(before)


def test_unknown_addon_and_bad_bundle_are_clear_errors(tmp_path):
    bundle = write_bundle(tmp_path, "1.0.0", TICKETS_V1)
    with pytest.raises(CommandError, match="not installed"):
        call_command("metacore_upgrade", str(bundle))
    with pytest.raises(CommandError):
        call_command("metacore_plan", str(tmp_path / "missing"))


def test_upgrade_through_the_rest_endpoint_uses_the_same_plan(tmp_path, installed, admin_client):
    import io
    import tarfile

    bundle = write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(bundle / "manifest.json", arcname="manifest.json")
    archive.seek(0)
    archive.name = "upg-1.1.0.tar.gz"
    response = admin_client.post(f"/api/metacore/installations/{KEY}/upgrade?dry_run=1", {"bundle": archive})
    assert response.status_code == 200, response.content
    body = response.json()
    plan = body.get("data", body)
    assert plan["steps"][0]["words"].startswith("add column tickets.due_at")
    assert "due_at" not in describe().columns
    assert str(uuid.UUID(str(next(iter(rows_by_id())))))


def test_install_and_upgrade_steps_are_traced(tmp_path, otel):
    get_kernel().installer.install(write_bundle(tmp_path, "1.0.0", TICKETS_V1))
    get_kernel().installer.upgrade(
        write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
    )
    names = {s.name for s in otel.spans()}
    assert {
        "metacore.install",
        "metacore.install.ddl",
        "metacore.install.sql_migrations",
        "metacore.install.hook",
        "metacore.upgrade",
        "metacore.upgrade.plan",
        "metacore.upgrade.ddl",
        "metacore.upgrade.hook",
    } <= names
    upgrade = next(s for s in otel.spans() if s.name == "metacore.upgrade")
    assert upgrade.attributes["metacore.addon"] == KEY and upgrade.attributes["metacore.steps"] >= 1
    get_kernel().installer.uninstall(KEY, drop_data=True)


def test_upgrade_announces_itself_after_commit_and_changes_the_metadata_version(tmp_path, installed):
    from metacore.events import addon_changed
    from metacore.models import AuditRecord

    seen = []

    def receiver(sender, event, **kwargs):
        seen.append((event.addon, event.operation, event.version))

    version_before = get_kernel().metadata.version()
    addon_changed.connect(receiver)
    try:
        get_kernel().installer.upgrade(
            write_bundle(tmp_path, "1.1.0", TICKETS_V1 + [column("due_at", "timestamp")])
        )
    finally:
        addon_changed.disconnect(receiver)
    assert seen == [(KEY, "upgrade", "1.1.0")]  # the hub turns it into ADDON_MANIFEST_CHANGED
    assert get_kernel().metadata.version() != version_before
    record = AuditRecord.objects.filter(kind="addon.upgrade", addon=KEY).latest("timestamp")
    assert record.details["from_version"] == "1.0.0" and record.details["to_version"] == "1.1.0"
