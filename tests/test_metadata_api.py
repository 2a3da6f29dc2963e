"""metadata/table|modal|all, options and search over HTTP: shapes, permissions, tenancy."""

import uuid

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from metadata_fixtures import fresh_registry, helpdesk_manifest, install, model, uninstall, upgrade  # noqa: F401 (autouse fixture)
from rest_framework.test import APIClient

from metacore.kernel import get_kernel
from metacore.metadata import derive
from metacore.models import TenantMembership

pytestmark = pytest.mark.django_db
ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
def helpdesk():
    manifest = helpdesk_manifest()
    install(manifest)
    yield manifest
    uninstall(manifest)


def member(username, org, *groups, **extra):
    user = User.objects.create_user(username, **extra)
    TenantMembership.objects.create(user=user, organization_id=org)
    user.groups.add(*groups)
    return user


@pytest.fixture
def agents(helpdesk):
    from django.core.management import call_command

    group = Group.objects.create(name="agents")
    call_command(
        "metacore_grant",
        "--group",
        "agents",
        "helpdesk.tickets.*",
        "helpdesk.customers.*",
        stdout=open("/dev/null", "w"),
    )
    return group


@pytest.fixture
def alice(agents):
    return member("alice", ORG_A, agents)


@pytest.fixture
def bob(agents):
    return member("bob", ORG_B, agents)


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def rows(table):
    return get_kernel().registry.resolve(f"helpdesk.{table}").model_class._default_manager


@pytest.fixture
def data(alice, bob):
    acme = rows("customers").create(organization_id=ORG_A, name="Acme", email="a@acme.test")
    beta = rows("customers").create(organization_id=ORG_A, name="Beta")
    zeta = rows("customers").create(organization_id=ORG_B, name="Zeta")
    tickets = rows("tickets")
    tickets.create(
        organization_id=ORG_A,
        title="Printer jam",
        status="open",
        priority=2,
        customer_id=acme.id,
        notes="paper tray",
    )
    tickets.create(organization_id=ORG_A, title="VPN down", status="pending", priority=1, notes="100% outage")
    tickets.create(organization_id=ORG_A, title="Old printer", status="archived", deleted_at=timezone.now())
    tickets.create(organization_id=ORG_B, title="Printer on fire", status="secret")
    return {"acme": acme, "beta": beta, "zeta": zeta}


# -- authentication and permissions --------------------------------------------------------

URLS = [
    "/api/metadata/table/tickets",
    "/api/metadata/modal/tickets",
    "/api/metadata/all",
    "/api/options/tickets?field=status",
    "/api/search/tickets?q=x",
]


@pytest.mark.parametrize("url", URLS)
def test_anonymous_gets_401_envelope(helpdesk, url):
    response = client_for().get(url)
    assert response.status_code == 401
    assert response.json()["success"] is False


@pytest.mark.parametrize("url", [u for u in URLS if "/all" not in u])
def test_missing_read_permission_is_403_with_the_exact_message(helpdesk, url):
    carol = member("carol", ORG_A)
    response = client_for(carol).get(url)
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "message": 'permission denied: missing "helpdesk.tickets.read"',
        "code": "permission_denied",
        "errors": {},
    }


def test_superuser_reads_without_grants(helpdesk):
    root = member("root", ORG_A, is_superuser=True)
    response = client_for(root).get("/api/metadata/table/helpdesk.Tickets")
    assert response.status_code == 200


def test_unknown_model_is_404(alice):
    response = client_for(alice).get("/api/metadata/table/nope")
    assert response.status_code == 404
    assert response.json()["success"] is False


# -- metadata shapes ----------------------------------------------------------------------


def test_table_metadata_derived_from_columns(alice):
    response = client_for(alice).get("/api/metadata/table/Tickets")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    meta = body["data"]
    assert meta["title"] == "Tickets"
    columns = {c["key"]: c for c in meta["columns"]}
    assert "organization_id" not in columns and "deleted_at" not in columns
    assert columns["id"] == {
        "key": "id",
        "label": "Id",
        "type": "text",
        "sortable": True,
        "filterable": True,
        "hidden": True,
        "readonly": True,
    }
    assert columns["title"] == {
        "key": "title",
        "label": "Title",
        "type": "text",
        "sortable": True,
        "filterable": True,
    }
    assert columns["priority"]["type"] == "number"
    assert columns["amount"]["type"] == "number" and columns["amount"]["cellStyle"] == "currency"
    assert columns["due_on"]["type"] == "datetime" and columns["due_on"]["cellStyle"] == "date"
    assert columns["billable"]["type"] == "boolean"
    assert columns["status"]["cellStyle"] == "status"
    assert (
        columns["customer_id"]["ref"] == "helpdesk.customers"
        and columns["customer_id"]["label"] == "Customer"
    )
    assert columns["created_at"]["readonly"] is True
    assert meta["searchColumns"] == ["title", "status", "notes"]
    assert {"key": "priority", "label": "Priority", "type": "number_range", "column": "priority"} in meta[
        "filters"
    ]
    assert {"key": "customer_id", "label": "Customer", "type": "select", "column": "customer_id"} in meta[
        "filters"
    ]
    assert meta["enableCRUDActions"] is True
    assert meta["defaultPerPage"] == 20 and meta["perPageOptions"] == [10, 20, 50, 100]
    (close,) = meta["actions"]
    assert close["key"] == "close" and close["label"] == "Close ticket"
    assert close["fields"] == [{"key": "reason", "label": "Reason", "type": "text", "required": True}]
    assert close["trigger"] == {"type": "wasm", "export": "close", "run_in_tx": True}


def test_modal_metadata_derived_from_columns(alice):
    meta = client_for(alice).get("/api/metadata/modal/helpdesk.tickets").json()["data"]
    assert meta["title"] == "Tickets"
    fields = {f["key"]: f for f in meta["fields"]}
    assert list(fields) == [
        "title",
        "status",
        "priority",
        "customer_id",
        "notes",
        "due_on",
        "billable",
        "amount",
        "tags",
    ]
    assert fields["title"] == {
        "key": "title",
        "label": "Title",
        "type": "text",
        "required": True,
        "validation": {"max": 120},
    }
    assert fields["status"]["defaultValue"] == "open"
    assert fields["priority"] == {"key": "priority", "label": "Priority", "type": "number", "nullable": True}
    assert (
        fields["customer_id"]["type"] == "dynamic_select"
        and fields["customer_id"]["ref"] == "helpdesk.customers"
    )
    assert fields["notes"]["type"] == "textarea" and fields["tags"]["type"] == "textarea"
    assert fields["due_on"]["type"] == "date" and fields["billable"]["type"] == "boolean"
    assert [a["key"] for a in meta["customActions"]] == ["close"]


def test_manifest_table_block_overrides_the_derived_metadata():
    block = {
        "title": "Support queue",
        "searchPlaceholder": "Find a ticket",
        "columns": [
            {"key": "title", "label": "Subject", "type": "text"},
            {
                "key": "status",
                "label": "State",
                "type": "text",
                "useOptions": True,
                "options": [
                    {"value": "open", "label": "Open", "color": "green"},
                    {"value": "closed", "label": "Closed"},
                ],
            },
        ],
    }
    manifest = helpdesk_manifest(table_meta=block)
    install(manifest)
    try:
        user = member("dora", ORG_A, is_superuser=True)
        meta = client_for(user).get("/api/metadata/table/tickets").json()["data"]
        assert meta["title"] == "Support queue" and meta["searchPlaceholder"] == "Find a ticket"
        assert meta["columns"] == block["columns"]
        assert meta["enableCRUDActions"] is True  # derived keys the block does not declare stay
        body = client_for(user).get("/api/options/tickets?field=status").json()
        assert body == {
            "success": True,
            "meta": {"type": "static", "count": 2},
            "data": [
                {"id": "open", "value": "open", "label": "Open", "name": "Open", "color": "green"},
                {"id": "closed", "value": "closed", "label": "Closed", "name": "Closed"},
            ],
        }
        assert client_for(user).get("/api/options/tickets?field=status&q=clo").json()["meta"]["count"] == 1
    finally:
        uninstall(manifest)


def test_metadata_all_lists_readable_models_and_versions_change_on_install(alice):
    client = client_for(alice)
    first = client.get("/api/metadata/all").json()["data"]
    assert set(first["tables"]) == {"Tickets", "Customers"} == set(first["modals"])
    assert first["tables"]["Tickets"]["title"] == "Tickets"
    assert client.get("/api/metadata/all").json()["data"]["version"] == first["version"]

    crm = helpdesk_manifest(key="crm")
    install(crm)
    try:
        second = client.get("/api/metadata/all").json()["data"]
        assert second["version"] != first["version"]
        assert set(second["tables"]) == {
            "helpdesk.Tickets",
            "helpdesk.Customers",
        }  # crm not granted; names clash
        root = member("root", ORG_A, is_superuser=True)
        everything = client_for(root).get("/api/metadata/all").json()["data"]
        assert set(everything["tables"]) == {
            "helpdesk.Tickets",
            "helpdesk.Customers",
            "crm.Tickets",
            "crm.Customers",
        }
    finally:
        uninstall(crm)
    third = client.get("/api/metadata/all").json()["data"]
    assert third["version"] not in (first["version"], second["version"])
    assert set(third["tables"]) == {"Tickets", "Customers"}


def test_upgrade_and_disable_change_the_version_and_the_metadata(helpdesk, alice):
    client = client_for(alice)
    before = client.get("/api/metadata/all").json()["data"]
    newer = helpdesk_manifest(version="1.1.0")
    newer["model_definitions"][0]["columns"].append({"name": "channel", "type": "string", "size": 30})
    upgrade(newer)
    after = client.get("/api/metadata/all").json()["data"]
    assert after["version"] != before["version"]
    assert "channel" in [c["key"] for c in after["tables"]["Tickets"]["columns"]]
    assert "channel" in [f["key"] for f in client.get("/api/metadata/modal/tickets").json()["data"]["fields"]]

    get_kernel().installer.disable("helpdesk")
    disabled = client.get("/api/metadata/all").json()["data"]
    assert disabled["version"] != after["version"] and disabled["tables"] == {}
    assert client.get("/api/metadata/table/tickets").status_code == 404
    get_kernel().installer.enable("helpdesk")


def test_metadata_all_only_lists_granted_models(helpdesk):
    from django.core.management import call_command

    erin = member("erin", ORG_A)
    call_command("metacore_grant", "--user", "erin", "helpdesk.customers.read", stdout=open("/dev/null", "w"))
    assert set(client_for(erin).get("/api/metadata/all").json()["data"]["tables"]) == {"Customers"}


def test_permission_queries_do_not_grow_with_models(alice):
    def permission_queries():
        user = User.objects.get(pk=alice.pk)
        with CaptureQueriesContext(connection) as ctx:
            assert client_for(user).get("/api/metadata/all").status_code == 200
        return [q for q in ctx.captured_queries if "auth_permission" in q["sql"]]

    before = permission_queries()
    extra = helpdesk_manifest(
        key="extra",
        extra_models=tuple(model(f"M{i}", f"m{i}", [{"name": "name", "type": "string"}]) for i in range(5)),
    )
    install(extra)
    try:
        assert len(permission_queries()) == len(before) <= 2
    finally:
        uninstall(extra)


# -- options --------------------------------------------------------------------------------


def test_options_of_own_rows_are_tenant_scoped(data, alice, bob):
    body = client_for(alice).get("/api/options/customers?field=id").json()
    assert body == {
        "success": True,
        "meta": {"type": "dynamic", "count": 2},
        "data": [
            {"id": str(data["acme"].id), "value": str(data["acme"].id), "label": "Acme", "name": "Acme"},
            {"id": str(data["beta"].id), "value": str(data["beta"].id), "label": "Beta", "name": "Beta"},
        ],
    }
    assert [o["label"] for o in client_for(bob).get("/api/options/customers").json()["data"]] == ["Zeta"]
    assert [o["label"] for o in client_for(alice).get("/api/options/customers?q=CM").json()["data"]] == [
        "Acme"
    ]
    assert [
        o["label"] for o in client_for(alice).get("/api/options/customers?limit=1&offset=1").json()["data"]
    ] == ["Beta"]
    by_id = (
        client_for(alice)
        .get(f"/api/options/customers?ids={data['beta'].id},{data['zeta'].id}")
        .json()["data"]
    )
    assert [o["label"] for o in by_id] == ["Beta"]  # another tenant's id is simply not there


def test_options_of_a_reference_list_the_referenced_rows(data, alice):
    body = client_for(alice).get("/api/options/tickets?field=customer_id").json()
    assert [o["label"] for o in body["data"]] == ["Acme", "Beta"]
    assert body["meta"] == {"type": "dynamic", "count": 2}


def test_options_of_a_reference_need_read_on_the_target(data):
    from django.core.management import call_command

    frank = member("frank", ORG_A)
    call_command("metacore_grant", "--user", "frank", "helpdesk.tickets.read", stdout=open("/dev/null", "w"))
    response = client_for(frank).get("/api/options/tickets?field=customer_id")
    assert response.status_code == 403
    assert response.json()["message"] == 'permission denied: missing "helpdesk.customers.read"'


def test_options_of_a_plain_column_are_its_visible_distinct_values(data, alice, bob):
    body = client_for(alice).get("/api/options/tickets?field=status").json()
    assert [o["value"] for o in body["data"]] == ["open", "pending"]  # no soft-deleted, no other tenant
    assert body["data"][0] == {"id": "open", "value": "open", "label": "open", "name": "open"}
    assert [o["value"] for o in client_for(bob).get("/api/options/tickets?field=status").json()["data"]] == [
        "secret"
    ]
    assert [
        o["value"] for o in client_for(alice).get("/api/options/tickets?field=priority&q=2").json()["data"]
    ] == [2]


@pytest.mark.parametrize(
    "query, param",
    [
        ("field=nope", "field"),
        ("field=organization_id", "field"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("foo=1", "foo"),
        ("field=priority&q=high", "q"),
        ("ids=not-a-uuid", "ids"),
    ],
)
def test_options_bad_input_is_400_naming_the_parameter(alice, query, param):
    response = client_for(alice).get(f"/api/options/tickets?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and param in body["errors"]


def test_options_without_an_organization():
    # Under shared and schema-per-tenant isolation every table is per organization; a table
    # shared by all tenants needs database-per-tenant (not implemented: the declared scope).
    manifest = {
        **helpdesk_manifest(
            key="shared",
            extra_models=(
                model("Categories", "categories", [{"name": "title", "type": "string"}], org_scoped=False),
            ),
        ),
        "tenant_isolation": "database-per-tenant",
    }
    install(manifest)
    try:
        get_kernel().registry.resolve("shared.categories").model_class._default_manager.create(
            title="Hardware"
        )
        loner = User.objects.create_user("loner", is_superuser=True)  # no TenantMembership
        client = client_for(loner)
        assert [o["label"] for o in client.get("/api/options/categories").json()["data"]] == ["Hardware"]
        response = client.get("/api/options/shared.customers")
        assert response.status_code == 403 and "belongs to no organization" in response.json()["message"]
    finally:
        uninstall(manifest)


def test_options_cost_does_not_grow_with_rows(data, alice):
    def count(limit):
        user = User.objects.get(pk=alice.pk)
        with CaptureQueriesContext(connection) as ctx:
            assert client_for(user).get(f"/api/options/customers?limit={limit}").status_code == 200
        return len(ctx.captured_queries)

    assert count(1) == count(50)


# -- search ---------------------------------------------------------------------------------


def test_search_matches_search_columns_within_the_tenant(data, alice, bob):
    body = client_for(alice).get("/api/search/tickets?q=printer").json()
    assert body["success"] is True and body["meta"] == {"type": "dynamic", "count": 1}
    (hit,) = body["data"]
    assert set(hit) == {"id", "value", "label", "name"} and hit["label"] == "Printer jam"
    assert [h["label"] for h in client_for(bob).get("/api/search/tickets?q=printer").json()["data"]] == [
        "Printer on fire"
    ]
    assert [h["label"] for h in client_for(alice).get("/api/search/tickets?search=tray").json()["data"]] == [
        "Printer jam"
    ]
    assert [h["label"] for h in client_for(alice).get("/api/search/tickets?q=100%25").json()["data"]] == [
        "VPN down"
    ]
    assert client_for(alice).get("/api/search/tickets?q=1_0").json()["data"] == []  # `_` is literal
    assert len(client_for(alice).get("/api/search/tickets?limit=1").json()["data"]) == 1


@pytest.mark.parametrize("query, param", [("limit=x", "limit"), ("sortBy=title", "sortBy")])
def test_search_bad_input_is_400(alice, query, param):
    response = client_for(alice).get(f"/api/search/tickets?{query}")
    assert response.status_code == 400 and param in response.json()["errors"]


def test_options_and_search_are_audited_as_reads_when_reads_are(data, alice, settings):
    from metacore.kernel import reset_kernel
    from metacore.models import AuditRecord

    settings.METACORE = {**settings.METACORE, "AUDIT_READS": True}
    reset_kernel()
    client_for(alice).get("/api/options/customers")
    client_for(alice).get("/api/search/tickets?q=printer")
    reads = AuditRecord.objects.filter(kind="crud.read", details__via="options/search")
    assert sorted(r.target.split(".")[-1] for r in reads) == ["customers", "tickets"]
    assert {r.tenant for r in reads} == {str(ORG_A)}
    reset_kernel()


def test_options_filter_value_scopes_a_dependent_dropdown(db):
    """`filter_value` (the SDK's dependent pickers) compares with the manifest's `filter_by`
    column of the options' model; a field without one ignores it, as upstream does."""
    manifest = helpdesk_manifest(
        key="deps",
        table_meta={
            "columns": [
                {"key": "customer_id", "filter_by": "email"},
                {"key": "status", "filter_by": "priority"},
            ]
        },
    )
    install(manifest)
    try:
        table = lambda name: get_kernel().registry.resolve(f"deps.{name}").model_class._default_manager
        table("customers").create(organization_id=ORG_A, name="Acme", email="a@acme.test")
        table("customers").create(organization_id=ORG_A, name="Beta", email="b@beta.test")
        table("tickets").create(organization_id=ORG_A, title="x", status="open", priority=1)
        table("tickets").create(organization_id=ORG_A, title="y", status="pending", priority=2)
        client = client_for(member("dora", ORG_A, is_superuser=True))
        url = "/api/options/deps.tickets?field="
        assert [
            o["label"] for o in client.get(url + "customer_id&filter_value=b@beta.test").json()["data"]
        ] == ["Beta"]
        assert [o["value"] for o in client.get(url + "status&filter_value=2").json()["data"]] == ["pending"]
        assert client.get(url + "status&filter_value=two").status_code == 400
        assert len(client.get(url + "title&filter_value=1").json()["data"]) == 2  # no filter_by: ignored
        assert len(client.get(url + "customer_id&filter_value=").json()["data"]) == 2
    finally:
        uninstall(manifest)


def test_metadata_labels_follow_accept_language(db):
    """Labels that are i18n keys (`models.*`) come from the manifest's `i18n` block in the
    caller's best language (upstream metadata/i18n.go); unknown keys and languages stay."""
    manifest = helpdesk_manifest(
        key="intl",
        table_meta={
            "title": "models.tickets.title",
            "columns": [{"key": "title", "label": "models.tickets.subject"}],
        },
    )
    manifest["i18n"] = {
        "es": {"models.tickets.title": "Boletos", "models.tickets.subject": "Asunto"},
        "en": {"models.tickets.title": "Tickets"},
    }
    install(manifest)
    try:
        client = client_for(member("dora", ORG_A, is_superuser=True))
        get = lambda url, lang: client.get(url, HTTP_ACCEPT_LANGUAGE=lang).json()["data"]
        meta = get("/api/metadata/table/intl.tickets", "es-MX,en;q=0.5")
        assert meta["title"] == "Boletos" and meta["columns"][0]["label"] == "Asunto"
        meta = get("/api/metadata/table/intl.tickets", "fr;q=1, en;q=0.8")
        assert meta["title"] == "Tickets" and meta["columns"][0]["label"] == "models.tickets.subject"
        assert get("/api/metadata/table/intl.tickets", "")["title"] == "models.tickets.title"
        assert get("/api/metadata/all", "es")["tables"]["Tickets"]["title"] == "Boletos"
    finally:
        uninstall(manifest)


def test_ref_from_relations_and_org_validators(db, settings):
    """`ref` comes from a `belongs_to` relation when the column has no reference (upstream
    AutoDeriveColumnRefs); `$org.<key>` validators resolve through ORG_CONFIG_RESOLVER."""
    manifest = helpdesk_manifest(
        key="rel",
        table_meta={
            "columns": [
                {"key": "notes", "label": "Notes", "validation": {"custom": "$org.notes_rule"}},
                {"key": "title", "label": "Title", "validation": {"custom": "$org.unknown"}},
            ]
        },
    )
    tickets = manifest["model_definitions"][0]
    tickets["columns"].append({"name": "owner_id", "type": "uuid"})
    tickets["relations"] = [
        {"kind": "belongs_to", "foreign_key": "owner_id", "through": "customers"},
        {"kind": "has_many", "foreign_key": "title", "through": "customers"},
    ]
    install(manifest)
    settings.METACORE = {
        **settings.METACORE,
        "ORG_CONFIG_RESOLVER": lambda org, key: {(str(ORG_A), "notes_rule"): "^[A-Z]{4}$"}.get((org, key)),
    }
    try:
        client = client_for(member("dora", ORG_A, is_superuser=True))
        columns = {
            c["key"]: c for c in client.get("/api/metadata/table/rel.tickets").json()["data"]["columns"]
        }
        assert columns["notes"]["validation"] == {"custom": "^[A-Z]{4}$"}
        assert columns["title"]["validation"] == {"custom": "$org.unknown"}
        resolved = get_kernel().registry.resolve("rel.tickets")
        derived = derive.table_metadata(
            resolved.manifest, resolved.spec.model_copy(update={"table_meta": None})
        )
        assert {c["key"]: c.get("ref") for c in derived["columns"]}["owner_id"] == "rel.customers"
        fields = {f["key"]: f for f in client.get("/api/metadata/modal/rel.tickets").json()["data"]["fields"]}
        assert fields["owner_id"]["ref"] == "rel.customers" and "ref" not in fields["title"]
    finally:
        uninstall(manifest)
