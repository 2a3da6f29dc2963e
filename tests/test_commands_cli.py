"""The command line as a whole: one flag vocabulary (old spellings warn), confirmation before
destroying data, exit codes that mean something, honest counts, listing grants, and one-line
errors without a traceback unless --traceback."""

import json
import uuid
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, ManagementUtility, call_command

from metacore.kernel import get_kernel
from metacore.models import Installation
from metacore.schema import ddl
from tests.installer_support import EXAMPLES

pytestmark = pytest.mark.django_db

ORG = "5e0c6f62-4a4f-4c55-b5a4-0d3b87f1a7f4"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.METACORE = {**settings.METACORE, "DATA_DIR": tmp_path / "data", "ALLOW_UNSIGNED_BUNDLES": True}


@pytest.fixture
def helpdesk():
    get_kernel().installer.install(EXAMPLES / "helpdesk")


def run(*args):
    """(stdout, stderr) of one command."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_list_has_a_header_and_json_output(helpdesk):
    out, _ = run("metacore_list")
    header, row = out.splitlines()
    assert header.split() == ["KEY", "VERSION", "STATE", "ENFORCER", "TABLES"]
    assert row.split() == ["helpdesk", "1.0.0", "enabled", "enforce", "tickets"]
    rows = json.loads(run("metacore_list", "--format", "json")[0])
    assert rows[0]["key"] == "helpdesk" and rows[0]["enforcer"] == "enforce"


def test_old_spellings_still_work_and_say_what_replaces_them(helpdesk):
    out, err = run("metacore_list", "--json")
    assert json.loads(out)[0]["key"] == "helpdesk"
    assert "--json is deprecated" in err and "--format json" in err
    out, err = run("metacore_call", "helpdesk", "echo", "--json", '{"hi": 1}', "--tenant", ORG)
    assert json.loads(out) == {"hi": 1}
    assert "--tenant is deprecated" in err and "use --organization" in err and "use --data" in err


def test_call_takes_organization_and_fails_on_a_declined_result(helpdesk):
    out, err = run("metacore_call", "helpdesk", "summary", "--organization", ORG)
    assert json.loads(out)["success"] is True and err == ""
    with pytest.raises(
        CommandError, match="helpdesk summary answered success=false: .*no organization"
    ) as exc:
        run("metacore_call", "helpdesk", "summary")
    assert exc.value.returncode == 1
    with pytest.raises(CommandError, match="--data is not valid JSON"):
        run("metacore_call", "helpdesk", "echo", "--data", "[1")


def test_drop_data_asks_first(helpdesk, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="cancelled"):
        run("metacore_uninstall", "helpdesk", "--drop-data")
    assert Installation.objects.get().state == "enabled" and ddl.table_exists("helpdesk", "tickets")
    questions = []
    monkeypatch.setattr("builtins.input", lambda prompt: questions.append(prompt) or "yes")
    assert "tables and rows dropped" in run("metacore_uninstall", "helpdesk", "--drop-data")[0]
    assert "drops helpdesk's tables (tickets)" in questions[0]
    assert not ddl.table_exists("helpdesk", "tickets")


@pytest.mark.parametrize("flag", ["--noinput", "--no-input", "--yes"])
def test_drop_data_without_a_question(helpdesk, monkeypatch, flag):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))
    assert "dropped" in run("metacore_uninstall", "helpdesk", "--drop-data", flag)[0]


def test_without_a_terminal_drop_data_is_refused(helpdesk):
    with pytest.raises(CommandError, match="pass --noinput"):
        run("metacore_uninstall", "helpdesk", "--drop-data")  # pytest's stdin cannot be read
    assert ddl.table_exists("helpdesk", "tickets")


def test_validate_fails_on_a_bundle_this_host_would_refuse(settings):
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": False}
    with pytest.raises(CommandError, match="not signed") as exc:
        run("metacore_validate", str(EXAMPLES / "tasks"))
    assert exc.value.returncode == 1
    assert "tasks 1.0.0: valid" in run("metacore_validate", str(EXAMPLES / "tasks"), "--manifest-only")[0]
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": True}
    assert "this host would install it" in run("metacore_validate", str(EXAMPLES / "tasks"))[0]


def test_validate_fails_on_a_kernel_this_host_is_not(tmp_path):
    manifest = json.loads((EXAMPLES / "tasks" / "manifest.json").read_text())
    manifest["compatibility"]["requires"] = [{"key": "kernel", "version": ">=9.0.0"}]
    (tmp_path / "future").mkdir()
    (tmp_path / "future" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="requires kernel"):
        run("metacore_validate", str(tmp_path / "future" / "manifest.json"))
    assert "valid" in run("metacore_validate", str(tmp_path / "future"), "--manifest-only")[0]


@pytest.fixture
def people(helpdesk):
    ann = User.objects.create_user("ann")
    agents = Group.objects.create(name="agents")
    ann.groups.add(agents)
    return ann, agents


def test_grant_and_revoke_count_only_what_changed(people):
    first, _ = run("metacore_grant", "--user", "ann", "helpdesk.tickets.read", "helpdesk.tickets.update")
    assert first.startswith("2 permission(s) granted to user ann")
    again, _ = run("metacore_grant", "--user", "ann", "helpdesk.tickets.read")
    assert again.strip() == "0 permission(s) granted to user ann (all already held)"
    assert run("metacore_revoke", "ann", "helpdesk.tickets.*")[0].startswith(
        "2 permission(s) revoked from user ann"
    )
    assert (
        run("metacore_revoke", "ann", "helpdesk.tickets.*")[0].strip()
        == "0 permission(s) revoked from user ann (all not held)"
    )


def test_grants_lists_a_users_and_a_groups_permissions(people):
    run("metacore_grant", "--group", "agents", "helpdesk.tickets.read")
    run("metacore_grant", "ann", "helpdesk.tickets.update")
    out, _ = run("metacore_grants", "ann")
    assert [line.split() for line in out.splitlines()] == [
        ["PERMISSION", "SOURCE"],
        ["helpdesk.tickets.read", "group:agents"],
        ["helpdesk.tickets.update", "direct"],
    ]
    assert json.loads(run("metacore_grants", "--group", "agents", "--format", "json")[0]) == [
        {"permission": "helpdesk.tickets.read", "source": "direct"},
    ]
    User.objects.create_user("bob")
    assert run("metacore_grants", "--user", "bob")[0].strip() == "user bob holds no addon permissions"
    with pytest.raises(CommandError, match='unknown user or group "carl"'):
        run("metacore_grants", "carl")


def test_grant_creates_the_group_on_request(helpdesk):
    with pytest.raises(CommandError, match='unknown group "support" \\(create it with --create-group\\)'):
        run("metacore_grant", "--group", "support", "helpdesk.tickets.read")
    out, _ = run("metacore_grant", "--group", "support", "--create-group", "helpdesk.tickets.read")
    assert out.splitlines() == [
        "group support created",
        "1 permission(s) granted to group support: helpdesk.tickets.read",
    ]
    assert Group.objects.get(name="support").permissions.get().codename == "helpdesk.tickets.read"


def test_errors_are_one_line_unless_traceback(capsys, monkeypatch):
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)  # keep the test db
    for argv in (
        ["metacore_enable", "ghost"],
        ["metacore_call", "ghost", "echo"],
        ["metacore_grants", "ghost"],
    ):
        with pytest.raises(SystemExit) as exit_:
            ManagementUtility(["manage.py", *argv]).execute()
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("CommandError: ") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(Exception, match="not installed") as raised:
        ManagementUtility(["manage.py", "metacore_enable", "ghost", "--traceback"]).execute()
    assert type(raised.value).__name__ == "NotFound"


def test_enforcer_shows_modes_as_json(helpdesk):
    run("metacore_enforcer", "--mode", "shadow", "--addon", "helpdesk")
    modes = json.loads(run("metacore_enforcer", "--format", "json")[0])
    assert modes["effective"] == "enforce" and modes["overrides"] == {"helpdesk": "shadow"}
    assert json.loads(run("metacore_enforcer", "--addon", "helpdesk", "--format", "json")[0]) == {
        "addon": "helpdesk",
        "effective": "shadow",
    }


def test_member_takes_organization(helpdesk):
    User.objects.create_user("ann")
    org = str(uuid.uuid4())
    assert (
        run("metacore_member", "ann", "--organization", org)[0].strip() == f"ann acts for organization {org}"
    )


def test_commands_that_report_speak_json(tmp_path):
    installed = json.loads(run("metacore_install", str(EXAMPLES / "tasks"), "--format", "json")[0])
    assert installed["key"] == "tasks" and installed["created_tables"] == ["projects", "tasks"]
    assert json.loads(run("metacore_disable", "tasks", "--format", "json")[0])["state"] == "disabled"
    assert json.loads(run("metacore_enable", "tasks", "--format", "json")[0])["state"] == "enabled"
    upgraded = json.loads(run("metacore_upgrade", str(EXAMPLES / "tasks"), "--force", "--format", "json")[0])
    assert upgraded["version"] == "1.0.0" and upgraded["plan"]["steps"] == []
    User.objects.create_user("ann")
    member = json.loads(run("metacore_member", "ann", "--organization", ORG, "--format", "json")[0])
    assert member == {"user": "ann", "organization": ORG}
    pruned = json.loads(run("metacore_audit_prune", "--older-than", "0", "--dry-run", "--format", "json")[0])
    assert pruned["would_delete"] >= 1
    gone = json.loads(run("metacore_uninstall", "tasks", "--drop-data", "--yes", "--format", "json")[0])
    assert gone == {"key": "tasks", "version": "1.0.0", "state": "uninstalled", "data_dropped": True}


def test_one_vocabulary_across_every_command():
    from django.core.management import get_commands, load_command_class

    names = sorted(n for n, app in get_commands().items() if n.startswith("metacore_") and app == "metacore")
    assert len(names) >= 18
    for name in names:
        parser = load_command_class("metacore", name).create_parser("manage.py", name)
        shown = {
            o for action in parser._actions if action.help != "==SUPPRESS==" for o in action.option_strings
        }
        assert not shown & {"--tenant", "--json", "--yes-i-am-sure"}, name
        if name in ("metacore_call", "metacore_member"):
            assert "--organization" in shown, name
        if name not in (
            "metacore_call",
            "metacore_keygen",
            "metacore_sign",
            "metacore_install_examples",
            "metacore_grant",
            "metacore_revoke",
            "metacore_worker",
        ):  # the worker serves, it shows nothing
            assert "--format" in shown, name
