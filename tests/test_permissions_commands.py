"""metacore_grant / metacore_revoke."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command

from metacore.kernel import get_kernel
from metacore.models import Installation
from metacore.permissions.naming import MODEL_ACTIONS, model_permission

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def perms():
    ctype = ContentType.objects.get_for_model(Installation)
    for table in ("tickets", "comments"):
        for action in MODEL_ACTIONS:
            codename = model_permission("tickets", table, action)
            Permission.objects.create(content_type=ctype, codename=codename, name=codename)


def effective(user):
    return get_kernel().permissions.effective(User.objects.get(pk=user.pk))


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_grant_and_revoke_user():
    ann = User.objects.create_user("ann")
    out = run("metacore_grant", "--user", "ann", "tickets.tickets.read", "tickets.tickets.create")
    assert "2 permission(s) granted to user ann" in out
    assert effective(ann) == {"tickets.tickets.read", "tickets.tickets.create"}
    run("metacore_revoke", "--user", "ann", "tickets.tickets.create")
    assert effective(ann) == {"tickets.tickets.read"}


def test_wildcard_group_grant_reaches_members():
    role = Group.objects.create(name="agents")
    bob = User.objects.create_user("bob")
    bob.groups.add(role)
    out = run("metacore_grant", "--group", "agents", "tickets.tickets.*")
    assert "4 permission(s) granted to group agents" in out
    assert effective(bob) == {f"tickets.tickets.{a}" for a in MODEL_ACTIONS}
    run("metacore_revoke", "--group", "agents", "tickets.tickets.*")
    assert effective(bob) == set()


def test_positional_target_user_or_group():
    User.objects.create_user("carl")
    Group.objects.create(name="reviewers")
    assert "to user carl" in run("metacore_grant", "carl", "tickets.comments.read")
    assert "to group reviewers" in run("metacore_grant", "reviewers", "tickets.comments.update")
    assert {p.codename for p in Group.objects.get(name="reviewers").permissions.all()} == {
        "tickets.comments.update"
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (("--user", "nobody", "tickets.tickets.read"), 'unknown user "nobody"'),
        (("--group", "nogroup", "tickets.tickets.read"), 'unknown group "nogroup"'),
        (("ghost", "tickets.tickets.read"), 'unknown user or group "ghost"'),
        (
            ("--user", "ann", "tickets.tickets.raed"),
            "unknown permission: tickets.tickets.raed (did you mean: tickets.tickets.read",
        ),
        (("--user", "ann", "other.things.*"), "unknown permission: other.things.*"),
        (("ann",), "give a user or group and at least one permission"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message):
    User.objects.create_user("ann")
    with pytest.raises(CommandError) as exc:
        call_command("metacore_grant", *args)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_ambiguous_name_needs_a_flag():
    User.objects.create_user("ops")
    Group.objects.create(name="ops")
    with pytest.raises(CommandError, match="both a user and a group"):
        call_command("metacore_grant", "ops", "tickets.tickets.read")


def test_unknown_permission_grants_nothing():
    ann = User.objects.create_user("ann")
    with pytest.raises(CommandError):
        call_command("metacore_grant", "--user", "ann", "tickets.tickets.read", "nope.nope.read")
    assert effective(ann) == set()
