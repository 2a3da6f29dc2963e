"""User permissions at the HTTP edge: session and token auth, 401/403 envelopes, roles,
guardian object grants on addon rows."""

import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from metadata_fixtures import fresh_registry, helpdesk_manifest, install, uninstall  # noqa: F401 (autouse fixture)
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from metacore.kernel import get_kernel
from metacore.models import TenantMembership

pytestmark = pytest.mark.django_db
ORG = uuid.uuid4()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def helpdesk():
    manifest = helpdesk_manifest()
    install(manifest)
    yield manifest
    uninstall(manifest)


def member(username, **extra):
    user = User.objects.create_user(username, password="pw", **extra)
    TenantMembership.objects.create(user=user, organization_id=ORG)
    return user


def grant(*args):
    call_command("metacore_grant", *args, stdout=open("/dev/null", "w"))


def test_installer_created_the_model_permissions(helpdesk):
    assert {f"helpdesk.tickets.{a}" for a in ("read", "create", "update", "delete")} <= {
        p.codename for p in get_kernel().permissions.addon_permissions()
    }


@pytest.mark.parametrize("url", ["/api/dynamic/tickets", "/api/metadata/table/tickets"])
def test_no_or_bad_credentials_answer_401(helpdesk, url):
    assert APIClient().get(url).status_code == 401
    response = APIClient().get(url, HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401
    assert response.json()["success"] is False


@pytest.mark.parametrize("url", ["/api/dynamic/tickets", "/api/metadata/table/tickets"])
def test_token_and_session_auth_with_a_role(helpdesk, url):
    role = Group.objects.create(name="support")
    grant("--group", "support", "helpdesk.tickets.read")
    user = member("tess")
    token = Token.objects.create(user=user)
    assert APIClient().get(url, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 403

    user.groups.add(role)
    assert APIClient().get(url, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    session = APIClient()
    assert session.login(username="tess", password="pw")
    assert session.get(url).status_code == 200


def test_create_without_the_permission_is_403_with_the_exact_message(helpdesk):
    user = member("ron")
    grant("--user", "ron", "helpdesk.tickets.read")
    client = APIClient()
    client.force_authenticate(user)
    response = client.post("/api/dynamic/tickets", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["message"] == 'permission denied: missing "helpdesk.tickets.create"'
    grant("--user", "ron", "helpdesk.tickets.create")
    client.force_authenticate(User.objects.get(pk=user.pk))
    assert client.post("/api/dynamic/tickets", {"title": "x"}, format="json").status_code == 201


def test_revoked_role_permission_is_denied_on_the_next_request(helpdesk):
    Group.objects.create(name="support")
    grant("--group", "support", "helpdesk.tickets.*")
    user = member("una")
    user.groups.add(Group.objects.get(name="support"))
    client = APIClient()
    assert client.login(username="una", password="pw")
    assert client.get("/api/metadata/modal/tickets").status_code == 200
    call_command(
        "metacore_revoke", "--group", "support", "helpdesk.tickets.read", stdout=open("/dev/null", "w")
    )
    assert client.get("/api/metadata/modal/tickets").status_code == 403


def test_guardian_object_permission_on_an_addon_row(helpdesk):
    from guardian.shortcuts import assign_perm

    tickets = get_kernel().registry.resolve("helpdesk.tickets").model_class._default_manager
    mine = tickets.create(organization_id=ORG, title="Mine")
    other = tickets.create(organization_id=ORG, title="Other")
    user = member("vic")
    assign_perm("metacore.helpdesk.tickets.update", user, mine)
    service = get_kernel().permissions
    user = User.objects.get(pk=user.pk)
    assert service.has(user, "helpdesk.tickets.update", mine)
    assert not service.has(user, "helpdesk.tickets.update", other)
    assert not service.has(user, "helpdesk.tickets.update")  # no model-wide grant
    role = Group.objects.create(name="owners")
    assign_perm("metacore.helpdesk.tickets.delete", role, other)
    user.groups.add(role)
    assert service.has(User.objects.get(pk=user.pk), "helpdesk.tickets.delete", other)


def test_manifest_declared_permissions_can_be_granted_and_checked():
    manifest = {
        **helpdesk_manifest(key="approvals"),
        "permissions": [{"key": "tickets.approve", "label": "Approve tickets"}],
    }
    install(manifest)
    try:
        user = member("wes")
        assert not get_kernel().permissions.has(user, "approvals.tickets.approve")
        grant("--user", "wes", "approvals.tickets.approve")
        assert get_kernel().permissions.has(User.objects.get(pk=user.pk), "approvals.tickets.approve")
    finally:
        uninstall(manifest)
