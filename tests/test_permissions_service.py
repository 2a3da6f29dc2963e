"""PermissionService: own grants, groups, superusers, guardian object grants, audit, cost."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType

from metacore import errors
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation
from metacore.permissions.naming import model_permission

pytestmark = pytest.mark.django_db


def make_perm(codename):
    ctype = ContentType.objects.get_for_model(Installation)
    perm, _ = Permission.objects.get_or_create(
        content_type=ctype, codename=codename, defaults={"name": codename}
    )
    return perm


@pytest.fixture
def perms():
    return {
        a: make_perm(model_permission("tickets", "tickets", a))
        for a in ("read", "create", "update", "delete")
    }


@pytest.fixture
def service():
    return get_kernel().permissions


def fresh(user):
    return User.objects.get(pk=user.pk)


def test_anonymous_is_not_authenticated(service, perms):
    for user in (None, AnonymousUser()):
        assert not service.has(user, "tickets.tickets.read")
        assert service.effective(user) == set()
        with pytest.raises(errors.NotAuthenticated) as exc:
            service.require(user, "tickets.tickets.read")
        assert exc.value.status == 401


def test_missing_permission_denied_with_exact_message_and_audited(service, perms):
    user = User.objects.create_user("ann")
    with pytest.raises(errors.Forbidden) as exc:
        service.require(user, "tickets.tickets.create")
    assert exc.value.status == 403
    assert exc.value.message == 'permission denied: missing "tickets.tickets.create"'
    record = AuditRecord.objects.get(kind="permission.check")
    assert (record.actor, record.addon, record.target, record.decision) == (
        str(user.pk),
        "tickets",
        "tickets.tickets.create",
        "deny",
    )


def test_own_grant(service, perms):
    user = User.objects.create_user("ann")
    user.user_permissions.add(perms["read"])
    user = fresh(user)
    assert service.has(user, "tickets.tickets.read")
    assert not service.has(user, "tickets.tickets.delete")
    service.require(user, "tickets.tickets.read")
    assert service.effective(user) == {"tickets.tickets.read"}


def test_group_role_grant(service, perms):
    role = Group.objects.create(name="agents")
    role.permissions.add(perms["read"], perms["update"])
    user = User.objects.create_user("bob")
    user.groups.add(role)
    user = fresh(user)
    assert service.effective(user) == {"tickets.tickets.read", "tickets.tickets.update"}
    assert service.has(user, "tickets.tickets.update")
    assert not service.has(user, "tickets.tickets.create")


def test_superuser_passes_and_inactive_fails(service, perms):
    admin = User.objects.create_superuser("root")
    assert service.has(admin, "tickets.tickets.delete")
    assert service.has(admin, "anything.at.all")
    assert {"tickets.tickets.read", "tickets.tickets.delete"} <= service.effective(admin)
    admin.is_active = False
    assert not service.has(admin, "tickets.tickets.delete")


def test_django_model_permissions_are_not_addon_permissions(service, perms):
    user = User.objects.create_user("ann")
    user.user_permissions.add(Permission.objects.get(codename="manage_addons"))
    assert service.effective(fresh(user)) == set()


def test_guardian_object_permission(service, perms):
    from guardian.shortcuts import assign_perm

    installation = Installation.objects.create(key="tickets", name="Tickets", version="1.0.0", manifest={})
    other = Installation.objects.create(key="other", name="Other", version="1.0.0", manifest={})
    user = User.objects.create_user("carl")
    assign_perm("metacore.tickets.tickets.update", user, installation)
    user = fresh(user)
    assert service.has(user, "tickets.tickets.update", installation)
    assert not service.has(user, "tickets.tickets.update", other)
    assert not service.has(user, "tickets.tickets.update")
    service.require(user, "tickets.tickets.update", installation)
    with pytest.raises(errors.Forbidden):
        service.require(user, "tickets.tickets.update", other)


def test_group_object_permission(service, perms):
    from guardian.shortcuts import assign_perm

    installation = Installation.objects.create(key="tickets", name="Tickets", version="1.0.0", manifest={})
    role = Group.objects.create(name="reviewers")
    assign_perm("metacore.tickets.tickets.delete", role, installation)
    user = User.objects.create_user("dee")
    user.groups.add(role)
    assert service.has(fresh(user), "tickets.tickets.delete", installation)


def test_checks_cost_a_fixed_number_of_queries(
    service, perms, django_assert_max_num_queries, django_assert_num_queries
):
    role = Group.objects.create(name="agents")
    role.permissions.add(perms["read"])
    user = User.objects.create_user("eve")
    user.groups.add(role)
    user = fresh(user)
    with django_assert_max_num_queries(2):
        service.has(user, "tickets.tickets.read")
    with django_assert_num_queries(0):
        for _ in range(100):
            assert service.has(user, "tickets.tickets.read")
            assert not service.has(user, "tickets.tickets.create")
