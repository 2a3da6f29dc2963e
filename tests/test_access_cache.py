"""Token authentication answered from a per-process cache (metacore.api.authentication):
every change to what a request's access depends on takes effect on the next request, in
every server process: a revoked grant (own or through a group), a moved or removed tenant
membership, a deactivated user, a deleted token."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from metacore.kernel import get_kernel, reset_kernel
from metacore.models import TenantMembership
from metacore.permissions.access import bump_access_revision, read_access_revision
from tests.hubkit import make_user, new_tenant, token_for
from tests.livekit import Web

MANIFEST = {
    "apiVersion": "asteby.com/v3",
    "kind": "Addon",
    "metadata": {"key": "desk", "name": "Desk", "version": "1.0.0"},
    "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
    "models": [
        {
            "key": "Notes",
            "table": "notes",
            "label": "Notes",
            "columns": [
                {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                {"name": "organization_id", "type": "uuid", "not_null": True},
                {"name": "title", "type": "text", "not_null": True},
            ],
        }
    ],
}
NOTES = "/api/dynamic/desk.notes"


@pytest.fixture
def desk(tmp_path):
    """The addon, one note in each of two tenants, and a reader of the first tenant."""
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    reset_kernel()
    get_kernel().installer.install(tmp_path)
    model = get_kernel().registry.resolve("desk.notes").model_class
    first, second = new_tenant(), new_tenant()
    model.objects.create(id=uuid.uuid4(), organization_id=first, title="first")
    model.objects.create(id=uuid.uuid4(), organization_id=second, title="second")
    user = make_user("reader", first)
    get_kernel().permissions.grant(user, ["desk.notes.read"])
    yield {"user": user, "token": token_for(user), "first": first, "second": second}
    get_kernel().installer.uninstall("desk", drop_data=True)  # runtime tables outlive the flush
    reset_kernel()


def titles(status_and_body):
    status, body = status_and_body
    return status, [row["title"] for row in body["data"]] if status == 200 else body["error"]["code"]


class InProcess:
    def __init__(self, token):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    def get(self, path):
        response = self.client.get(path)
        return response.status_code, response.json()


@pytest.mark.django_db
def test_every_access_change_is_seen_on_the_next_request(desk):
    api = InProcess(desk["token"])
    user = desk["user"]
    assert titles(api.get(NOTES)) == (200, ["first"])
    assert titles(api.get(NOTES)) == (200, ["first"])  # answered from the cache

    TenantMembership.objects.filter(user=user).delete()  # a queryset delete sends post_delete too
    TenantMembership.objects.create(user=user, organization_id=desk["second"])
    assert titles(api.get(NOTES)) == (200, ["second"])

    get_kernel().permissions.revoke(user, ["desk.notes.read"])
    assert api.get(NOTES)[0] == 403

    role = Group.objects.create(name="readers")
    role.permissions.add(Permission.objects.get(codename="desk.notes.read"))
    user.groups.add(role)
    assert titles(api.get(NOTES)) == (200, ["second"])
    role.permissions.clear()
    assert api.get(NOTES)[0] == 403

    user.is_superuser = True
    user.save()
    assert titles(api.get(NOTES)) == (200, ["second"])
    user.is_active = False
    user.save()
    assert api.get(NOTES)[0] == 401
    user.is_active = True
    user.save()
    assert api.get(NOTES)[0] == 200
    Token.objects.filter(user=user).delete()
    assert api.get(NOTES)[0] == 401


@pytest.mark.django_db
def test_a_cached_user_is_a_fresh_object_per_request(desk):
    """What one request caches on its user object (Django's permission caches, guardian's
    object checker) never reaches the next request."""
    from metacore.api.authentication import CachedTokenAuthentication

    auth = CachedTokenAuthentication()
    first, _ = auth.authenticate_credentials(desk["token"])
    first._perm_cache = {"leaked"}
    second, _ = auth.authenticate_credentials(desk["token"])
    assert second is not first and not hasattr(second, "_perm_cache")
    assert second.metacore_membership.organization_id == desk["first"]


@pytest.mark.django_db
def test_a_login_does_not_move_the_access_revision(desk):
    """Every session login saves last_login; nothing cached depends on it."""
    from django.contrib.auth.models import update_last_login

    bump_access_revision()
    before = read_access_revision()
    update_last_login(None, desk["user"])
    assert read_access_revision() == before
    get_user_model().objects.filter(pk=desk["user"].pk).update(is_active=False)  # bypasses signals
    bump_access_revision()  # as the module's docstring asks of such writes
    assert read_access_revision() > before


@pytest.mark.django_db(transaction=True)
def test_a_revocation_reaches_every_server_process(desk):
    """Two server processes (one granian worker each) serving the same database, both with
    the token cached."""
    servers = Web.start(2, extra_args=("WEB_CONCURRENCY=1",))
    try:
        for server in servers:
            for _ in range(2):
                assert titles(server.request("GET", NOTES, desk["token"])) == (200, ["first"])

        get_kernel().permissions.revoke(desk["user"], ["desk.notes.read"])
        for server in servers:
            assert server.request("GET", NOTES, desk["token"])[0] == 403

        get_kernel().permissions.grant(desk["user"], ["desk.notes.read"])
        TenantMembership.objects.filter(user=desk["user"]).update(organization_id=desk["second"])
        bump_access_revision()  # a queryset update sends no signal
        for server in servers:
            assert titles(server.request("GET", NOTES, desk["token"])) == (200, ["second"])
    finally:
        for server in servers:
            server.terminate()


@pytest.mark.django_db
def test_a_jwt_user_is_cached_like_a_token_and_every_change_is_seen(desk):
    """`Authorization: Bearer <jwt>` (CachedJWTAuthentication): the user behind a valid JWT
    comes from memory, and a revoked grant or a deactivated user takes effect on the next
    request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework_simplejwt.tokens import AccessToken

    user = desk["user"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")

    def get():
        response = client.get(NOTES)
        return response.status_code, response.json()

    assert titles(get()) == (200, ["first"])
    with CaptureQueriesContext(connection) as cached:
        assert titles(get()) == (200, ["first"])
    tables = " ".join(query["sql"] for query in cached.captured_queries)
    assert "auth_user" not in tables and "membership" not in tables and "auth_permission" not in tables

    get_kernel().permissions.revoke(user, ["desk.notes.read"])
    assert get()[0] == 403
    get_kernel().permissions.grant(user, ["desk.notes.read"])
    user.is_active = False
    user.save()
    assert get()[0] == 401
    user.is_active = True
    user.save()
    assert titles(get()) == (200, ["first"])


@pytest.mark.django_db
def test_a_warm_read_costs_one_revision_read_and_its_own_statements(desk):
    """Once a token and a read's shape have been seen, a get-one is one read of both stored
    revisions (access and registry) and its row's SELECT, a list page adds its COUNT (on
    SQLite, whether the database changed since it last counted): nothing else per request.
    The compiled statements keep the tenant wall (another tenant's row is not found)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = InProcess(desk["token"])
    row_id = api.get(NOTES)[1]["data"][0]["id"]
    model = get_kernel().registry.resolve("desk.notes").model_class
    other = str(model.objects.get(organization_id=desk["second"]).pk)
    api.get(f"{NOTES}/{row_id}")
    with CaptureQueriesContext(connection) as one:
        status, body = api.get(f"{NOTES}/{row_id}")
    assert status == 200 and body["data"]["title"] == "first"
    api.get(NOTES)  # the page's statements compiled
    with CaptureQueriesContext(connection) as page:
        assert titles(api.get(NOTES)) == (200, ["first"])
    statements = [[q["sql"].split()[0:2] for q in c.captured_queries] for c in (one, page)]
    revisions = ["SELECT", '"revision",']
    assert statements[0][0] == revisions and len(statements[0]) == 2
    # In a transaction (this test's), SQLite counts too (tests/test_store_counts.py).
    assert statements[1][:2] == [revisions, ["SELECT", "COUNT(*)"]] and len(statements[1]) == 3
    assert api.get(f"{NOTES}/{other}")[0] == 404


@pytest.mark.django_db
def test_a_store_request_reads_the_stored_revisions_once(desk):
    """A create checks the registry's freshness when it resolves the model, when the hub
    publishes and when the webhook deliveries look for subscribers: one read serves them all
    (`one_revision_read`). A revision moved within the scope is read again and served."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from metacore.schema.registry import bump_registry_revision, one_revision_read, read_revision

    get_kernel().permissions.grant(desk["user"], ["desk.notes.create"])
    api = InProcess(desk["token"])
    api.client.post(NOTES, {"title": "warm"}, format="json")
    with CaptureQueriesContext(connection) as create:
        assert api.client.post(NOTES, {"title": "more"}, format="json").status_code == 201
    state = [q["sql"] for q in create.captured_queries if "metacore_registrystate" in q["sql"]]
    assert len(state) == 1 and '"access_revision"' in state[0] and '"revision"' in state[0]

    registry = get_kernel().registry
    with one_revision_read(), CaptureQueriesContext(connection) as scoped:
        registry.refresh()
        registry.refresh()
        bump_registry_revision()  # what an install, an upgrade or a tenant's first copy does
        registry.refresh()
    revision_reads = [q for q in scoped.captured_queries if q["sql"].startswith('SELECT "revision" FROM')]
    assert len(revision_reads) == 2
    assert registry.revision == read_revision()
