"""Addon data in the Django admin, in-process (Django's test client): pages derived from the
manifest, every write through the store (validation, audit), and tenancy on every page a
staff user can reach (changelist, change form, filters, autocomplete, actions)."""

import csv
import io
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from store_support import ORG_A, ORG_B, installed_addon, make_user

from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, TenantMembership

TASKS = Path(__file__).resolve().parent.parent / "examples" / "tasks"
PERMS = [f"tasks.{t}.{v}" for t in ("projects", "tasks") for v in ("read", "create", "update", "delete")]
PROJECTS, TASK_ROWS = "/admin/addon_tasks/projects/", "/admin/addon_tasks/tasks/"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """tasks installed; one project (+ task) in each of organizations A and B, committed."""
    with installed_addon(django_db_blocker, TASKS):
        with django_db_blocker.unblock():
            owner = User.objects.create_user("tasks-owner", is_superuser=True)
            store, rows = get_kernel().store, {}
            for org, name in ((ORG_A, "Apollo"), (ORG_B, "Borealis")):
                ctx = CallContext.for_user(owner, tenant=str(org))
                project = store.create(ctx, "tasks.projects", {"name": name})
                task = store.create(
                    ctx,
                    "tasks.tasks",
                    {"project_id": project["id"], "title": f"{name} task", "status": f"st-{name.lower()}"},
                )
                rows[org] = {"project": project["id"], "task": task["id"]}
        yield rows
        with django_db_blocker.unblock():
            owner.delete()


@pytest.fixture
def staff(db):
    def login(username, org, perms=PERMS):
        user = make_user(username, org, perms=perms)
        User.objects.filter(pk=user.pk).update(is_staff=True)
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return login


def page(response, status=200):
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.content.decode()


def test_index_lists_the_addon_under_its_name(world, staff):
    html = page(staff("alice", ORG_A).get("/admin/"))
    assert "Tasks" in html and PROJECTS in html and TASK_ROWS in html


def test_changelist_shows_only_the_users_organization(world, staff):
    alice = staff("alice", ORG_A)
    html = page(alice.get(PROJECTS))
    assert "Apollo" in html and "Borealis" not in html
    assert "1 project" in html.lower() or "1 Projects" in html
    tasks = page(alice.get(TASK_ROWS))
    assert "Apollo task" in tasks and "Borealis task" not in tasks
    # the reference is shown by its label and linked to the project's change page
    assert f'href="{PROJECTS}{world[ORG_A]["project"]}/change/"' in tasks


def test_search_and_filters_are_tenant_scoped(world, staff):
    alice = staff("alice", ORG_A)
    assert "Apollo task" in page(alice.get(TASK_ROWS, {"q": "apollo"}))
    assert "Apollo task" not in page(alice.get(TASK_ROWS, {"q": "borealis"}))
    html = page(alice.get(TASK_ROWS))
    # the status filter lists this organization's values; the project filter its projects
    assert "st-apollo" in html and "st-borealis" not in html
    assert "Borealis" not in html
    filtered = page(alice.get(TASK_ROWS, {"status": "st-apollo"}))
    assert "Apollo task" in filtered


def test_other_organizations_rows_are_unreachable(world, staff):
    alice = staff("alice", ORG_A)
    other = world[ORG_B]["project"]
    response = alice.get(f"{PROJECTS}{other}/change/")
    assert response.status_code == 302  # Django's "doesn't exist" redirect
    alice.post(f"{PROJECTS}{other}/change/", {"name": "hijacked", "archived": ""})
    alice.post(f"{PROJECTS}{other}/delete/", {"post": "yes"})
    # bulk actions only act on the selection within the visible rows
    alice.post(PROJECTS, {"action": "delete_selected", "_selected_action": [other], "post": "yes"})
    export = alice.post(
        PROJECTS, {"action": "export_csv", "_selected_action": [other, world[ORG_A]["project"]]}
    )
    exported = b"".join(export.streaming_content).decode()
    assert "Apollo" in exported and "Borealis" not in exported
    owner = User.objects.get(username="tasks-owner")
    row = get_kernel().store.get(CallContext.for_user(owner, tenant=str(ORG_B)), "tasks.projects", other)
    assert row["name"] == "Borealis"


def test_autocomplete_is_tenant_scoped(world, staff):
    alice = staff("alice", ORG_A)
    params = {"app_label": "addon_tasks", "model_name": "tasks", "field_name": "project", "term": ""}
    response = alice.get("/admin/autocomplete/", params)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["text"] for r in results] == ["Apollo"]
    assert [r["id"] for r in results] == [world[ORG_A]["project"]]
    assert alice.get("/admin/autocomplete/", {**params, "term": "Bore"}).json()["results"] == []


def test_writes_go_through_the_store(world, staff):
    alice = staff("alice", ORG_A)
    response = alice.post(f"{PROJECTS}add/", {"name": "Gemini", "description": "", "archived": "on"})
    assert response.status_code == 302, page(response)
    owner_ctx = CallContext.for_user(alice.user, tenant=str(ORG_A))
    created = get_kernel().store.list(owner_ctx, "tasks.projects", {"search": "Gemini"}).rows[0]
    assert created["archived"] is True
    record = AuditRecord.objects.get(kind="crud.create", target=f"tasks.projects:{created['id']}")
    assert record.actor == str(alice.user.pk) and record.tenant == str(ORG_A)
    # the store's uniqueness check becomes a form error, not a 500
    duplicate = page(alice.post(f"{PROJECTS}add/", {"name": "Gemini", "archived": ""}))
    assert "errorlist" in duplicate
    # a reference to another organization's project is refused
    bad = page(
        alice.post(
            f"{TASK_ROWS}add/",
            {"project": world[ORG_B]["project"], "title": "x", "status": "todo", "priority": "3"},
        )
    )
    assert "errorlist" in bad
    # soft delete: the task disappears from the list and is kept with deleted_at
    task = world[ORG_A]["task"]
    assert alice.post(f"{TASK_ROWS}{task}/delete/", {"post": "yes"}).status_code == 302
    assert f"{TASK_ROWS}{task}/change/" not in page(alice.get(TASK_ROWS))
    assert AuditRecord.objects.filter(kind="crud.delete", target=f"tasks.tasks:{task}").exists()


def test_permissions_map_to_the_addons_own(world, staff):
    reader = staff("reader", ORG_A, perms=["tasks.projects.read"])
    assert "Apollo" in page(reader.get(PROJECTS))
    assert reader.get(f"{PROJECTS}add/").status_code == 403
    assert reader.get(TASK_ROWS).status_code == 403
    html = page(reader.get(f"{PROJECTS}{world[ORG_A]['project']}/change/"))
    assert 'name="name"' not in html  # view only
    # writing without read would show rows the user may not read: no page at all
    writer = staff("writer", ORG_A, perms=["tasks.projects.update"])
    assert writer.get(PROJECTS).status_code == 403


def test_superuser_picks_the_organization_explicitly(world, db):
    root = User.objects.create_user("root", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(root)
    html = page(client.get(PROJECTS))
    assert "Apollo" not in html and "Borealis" not in html and "pick an organization" in html
    assert client.post("/admin/organization/", {"organization": str(ORG_B)}).status_code == 302
    html = page(client.get(PROJECTS))
    assert "Borealis" in html and "Apollo" not in html
    # a staff user cannot pick
    staff_user = make_user("carol", ORG_A, perms=PERMS)
    User.objects.filter(pk=staff_user.pk).update(is_staff=True)
    carol = Client()
    carol.force_login(staff_user)
    assert carol.post("/admin/organization/", {"organization": str(ORG_B)}).status_code == 403


def test_import_from_a_file(world, staff):
    alice = staff("alice", ORG_A)
    upload = io.BytesIO(b"name,archived\nImported one,false\nImported two,true\n")
    upload.name = "projects.csv"
    response = alice.post(f"{PROJECTS}import/", {"file": upload})
    assert response.status_code == 302, page(response)
    html = page(alice.get(PROJECTS))
    assert "Imported one" in html and "Imported two" in html
    assert not TenantMembership.objects.filter(organization_id=uuid.UUID(int=0)).exists()
    assert list(csv.reader(io.StringIO("a,b")))  # csv stays importable (used above)


HELPDESK = Path(__file__).resolve().parent.parent / "examples" / "helpdesk"
TICKETS = "/admin/addon_helpdesk/tickets/"


@pytest.fixture(scope="module")
def helpdesk(django_db_setup, django_db_blocker):
    """The wasm example: one open ticket in each organization."""
    with installed_addon(django_db_blocker, HELPDESK):
        with django_db_blocker.unblock():
            owner = User.objects.create_user("helpdesk-owner", is_superuser=True)
            rows = {
                org: get_kernel().store.create(
                    CallContext.for_user(owner, tenant=str(org)),
                    "helpdesk.tickets",
                    {"title": f"Ticket of {org}"},
                )["id"]
                for org in (ORG_A, ORG_B)
            }
        yield rows
        with django_db_blocker.unblock():
            owner.delete()


def test_row_action_asks_for_its_fields_and_runs_only_on_visible_rows(helpdesk, staff):
    perms = [f"helpdesk.tickets.{v}" for v in ("read", "create", "update", "delete")]
    alice = staff("alice", ORG_A, perms=perms)
    selection = {"action": "action_resolve", "_selected_action": [helpdesk[ORG_A], helpdesk[ORG_B]]}
    form = page(alice.post(TICKETS, selection))
    assert 'name="field_resolution"' in form and "Ticket of" in form and str(ORG_B) not in form
    done = page(
        alice.post(
            TICKETS, {**selection, "_metacore_confirmed": "1", "field_resolution": "fixed"}, follow=True
        )
    )
    assert "resolve" in done
    owner = User.objects.get(username="helpdesk-owner")
    store = get_kernel().store
    row_a = store.get(CallContext.for_user(owner, tenant=str(ORG_A)), "helpdesk.tickets", helpdesk[ORG_A])
    row_b = store.get(CallContext.for_user(owner, tenant=str(ORG_B)), "helpdesk.tickets", helpdesk[ORG_B])
    assert (row_a["status"], row_a["resolution"]) == ("resolved", "fixed")
    assert row_b["status"] == "open"
