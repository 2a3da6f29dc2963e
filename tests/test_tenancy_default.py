"""Tenancy follows upstream: `tenant_isolation` absent or `shared` makes every table of an
addon organization-scoped, in both manifest formats; an upgrade that scopes tables which
were shared needs the rows' organization (`--assign-organization`). Over HTTP and commands,
on SQLite and PostgreSQL."""

import json
import tarfile
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from store_support import ORG_A, ORG_B, client_for, fails, make_user, ok

from metacore.kernel import get_kernel
from metacore.manifest.parse import load_manifest
from metacore.models import Installation

pytestmark = pytest.mark.django_db(transaction=True)

PAYROLL = [{"name": "employee", "type": "string", "required": True}, {"name": "amount", "type": "decimal"}]
PERMS = [f"hr.payroll_lines.{a}" for a in ("read", "create", "update", "delete")]


def hr_bundle(tmp_path, version="1.0.0", **top):
    """An HR addon in the flat format that says nothing about tenancy (as most published
    bundles do): its payroll lines must still be per organization."""
    root = tmp_path / f"hr-{version}-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    manifest = {
        "key": "hr",
        "name": "HR",
        "version": version,
        "kernel": ">=3.0.0 <4.0.0",
        "model_definitions": [
            {
                "table_name": "payroll_lines",
                "model_key": "payroll_lines",
                "label": "Payroll lines",
                "columns": PAYROLL,
            }
        ],
        **top,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def uninstall_hr():
    yield
    if Installation.objects.filter(key="hr").exists():
        get_kernel().installer.uninstall("hr", drop_data=True)


@pytest.mark.parametrize(
    "document",
    [
        {
            "key": "hr",
            "name": "HR",
            "version": "1.0.0",
            "model_definitions": [{"table_name": "payroll_lines", "columns": PAYROLL}],
        },
        {
            "key": "hr",
            "name": "HR",
            "version": "1.0.0",
            "tenant_isolation": "shared",
            "model_definitions": [{"table_name": "payroll_lines", "org_scoped": False, "columns": PAYROLL}],
        },
        {
            "apiVersion": "asteby.com/v3",
            "kind": "Addon",
            "metadata": {"key": "hr", "name": "HR", "version": "1.0.0"},
            "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0"}]},
            "models": [
                {
                    "key": "PayrollLine",
                    "table": "payroll_lines",
                    "columns": [{"name": "employee", "type": "text"}],
                }
            ],
        },
    ],
    ids=["flat-absent", "flat-shared-explicit-false", "v3-absent"],
)
def test_shared_or_absent_isolation_scopes_every_table(document):
    model = load_manifest(document).model("payroll_lines")
    assert model.org_scoped and model.column("organization_id").required


def test_database_isolation_keeps_the_declared_scope():
    document = {
        "key": "hr",
        "name": "HR",
        "version": "1.0.0",
        "tenant_isolation": "database-per-tenant",
        "model_definitions": [{"table_name": "payroll_lines", "columns": PAYROLL}],
    }
    assert not load_manifest(document).model("payroll_lines").org_scoped


def test_schema_isolation_scopes_every_table_too():
    # Each organization has its own copy, and the copy keeps organization_id (a second wall).
    document = {
        "key": "hr",
        "name": "HR",
        "version": "1.0.0",
        "tenant_isolation": "schema-per-tenant",
        "model_definitions": [{"table_name": "payroll_lines", "org_scoped": False, "columns": PAYROLL}],
    }
    assert load_manifest(document).model("payroll_lines").org_scoped


def test_payroll_of_one_organization_is_never_listed_for_another(tmp_path, uninstall_hr):
    get_kernel().installer.install(hr_bundle(tmp_path))
    alice = client_for(make_user("alice", ORG_A, perms=PERMS))
    bob = client_for(make_user("bob", ORG_B, perms=PERMS))
    loner = client_for(make_user("loner", None, perms=PERMS))
    line = ok(
        alice.post("/api/dynamic/payroll_lines", {"employee": "Ann", "amount": "5200.00"}, format="json"), 201
    )["data"]
    assert line["organization_id"] == str(ORG_A)

    assert ok(bob.get("/api/dynamic/payroll_lines"))["data"] == []
    fails(bob.get(f"/api/dynamic/payroll_lines/{line['id']}"), 404)
    fails(bob.put(f"/api/dynamic/payroll_lines/{line['id']}", {"amount": "1"}, format="json"), 404)
    fails(bob.delete(f"/api/dynamic/payroll_lines/{line['id']}"), 404)
    fails(loner.get("/api/dynamic/payroll_lines"), 403)
    assert [r["employee"] for r in ok(alice.get("/api/dynamic/payroll_lines"))["data"]] == ["Ann"]
    if connection.vendor == "postgresql":  # the second wall: row-level security on the table itself
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relrowsecurity FROM pg_class WHERE oid = 'addon_hr.payroll_lines'::regclass"
            )
            assert cursor.fetchone() == (True,)


def _shared_install_with_rows(tmp_path, rows=2):
    """An installed HR addon whose table is shared by every tenant: the state a flat addon
    installed before tenancy followed upstream is in (here reached with database-per-tenant
    isolation, which metacore does not implement and which keeps the declared scope)."""
    get_kernel().installer.install(hr_bundle(tmp_path, tenant_isolation="database-per-tenant"))
    model = get_kernel().registry.resolve("hr.payroll_lines").model_class
    for i in range(rows):
        model.objects.create(employee=f"e{i}", amount=i)
    return model


def test_upgrade_to_shared_tenancy_is_refused_with_the_count_of_rows_lacking_an_organization(
    tmp_path, uninstall_hr
):
    _shared_install_with_rows(tmp_path, rows=3)
    bundle = hr_bundle(tmp_path, "1.1.0")
    with pytest.raises(
        CommandError, match="3 rows have no organization; assign them one with --assign-organization"
    ):
        call_command("metacore_upgrade", str(bundle))
    assert Installation.objects.get(key="hr").version == "1.0.0"
    model = get_kernel().registry.resolve("hr.payroll_lines").model_class
    assert (
        model.objects.count() == 3 and not get_kernel().registry.resolve("hr.payroll_lines").spec.org_scoped
    )

    with pytest.raises(CommandError, match="is not an organization id"):
        call_command("metacore_upgrade", str(bundle), "--assign-organization", "acme")


def test_upgrade_assigns_the_given_organization_and_scopes_the_table(tmp_path, uninstall_hr, capsys):
    _shared_install_with_rows(tmp_path, rows=2)
    bundle = hr_bundle(tmp_path, "1.1.0")
    call_command("metacore_plan", str(bundle), "--assign-organization", str(ORG_A))
    out = capsys.readouterr().out
    assert "[needs-data-check] organization-scope table payroll_lines" in out and str(ORG_A) in out
    call_command("metacore_upgrade", str(bundle), "--assign-organization", str(ORG_A))
    resolved = get_kernel().registry.resolve("hr.payroll_lines")
    assert resolved.spec.org_scoped
    assert {str(o) for o in resolved.model_class.objects.values_list("organization_id", flat=True)} == {
        str(ORG_A)
    }

    alice = client_for(make_user("alice", ORG_A, perms=PERMS))
    bob = client_for(make_user("bob", ORG_B, perms=PERMS))
    assert sorted(r["employee"] for r in ok(alice.get("/api/dynamic/payroll_lines"))["data"]) == ["e0", "e1"]
    assert ok(bob.get("/api/dynamic/payroll_lines"))["data"] == []


def test_upgrade_of_an_empty_shared_table_needs_no_organization(tmp_path, uninstall_hr):
    _shared_install_with_rows(tmp_path, rows=0)
    call_command("metacore_upgrade", str(hr_bundle(tmp_path, "1.1.0")))
    assert get_kernel().registry.resolve("hr.payroll_lines").spec.org_scoped


def _archive(root, tmp_path):
    target = tmp_path / f"{root.name}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        archive.add(root / "manifest.json", arcname="manifest.json")
    return target


def test_upgrade_over_rest_takes_assign_organization(tmp_path, uninstall_hr):
    _shared_install_with_rows(tmp_path, rows=1)
    archive = _archive(hr_bundle(tmp_path, "1.1.0"), tmp_path)
    admin = client_for(make_user("root", superuser=True))
    url = "/api/metacore/installations/hr/upgrade"
    with archive.open("rb") as upload:
        body = fails(admin.post(url, {"bundle": upload}, format="multipart"), 409)
    assert "1 row has no organization" in body["message"]
    with archive.open("rb") as upload:
        plan = admin.post(
            url + "?dry_run=1", {"bundle": upload, "assign_organization": str(ORG_B)}, format="multipart"
        ).json()
    assert plan["blocked"] == [] and any(s["action"] == "scope_table" for s in plan["steps"])
    with archive.open("rb") as upload:
        response = admin.post(url, {"bundle": upload, "assign_organization": str(ORG_B)}, format="multipart")
    assert response.status_code == 200 and response.json()["version"] == "1.1.0"
    model = get_kernel().registry.resolve("hr.payroll_lines").model_class
    assert [str(o) for o in model.objects.values_list("organization_id", flat=True)] == [str(ORG_B)]
