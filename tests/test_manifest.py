"""Manifests: both formats, every fixture (own and SDK corpus), the v3 -> internal mapping, validation rules,
column types, and `metacore_validate`."""

import datetime as dt
import json
import tarfile
import uuid
from decimal import Decimal

import pytest
from addon_fixtures import (
    OWN_FIXTURES,
    OWN_INVALID,
    bundle_params,
    manifest_features,
    own_bundles,
    sdk_bundles,
)
from django.core.management import CommandError, call_command
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from metacore.manifest.errors import ManifestError
from metacore.manifest.files import read_manifest_bytes
from metacore.manifest.model import Column, Manifest, Reference
from metacore.manifest.parse import load_manifest
from metacore.schema.types import UnknownColumnType, column_types, get_type

FIXTURES = bundle_params()


def problems_of(data, **kwargs):
    with pytest.raises(ManifestError) as info:
        load_manifest(data, **kwargs)
    return info.value.problems


def v3(**changes):
    """A small valid v3 manifest; `changes` replace top-level keys."""
    doc = {
        "apiVersion": "asteby.com/v3",
        "kind": "Addon",
        "metadata": {"key": "helpdesk", "name": "Helpdesk", "version": "1.2.0"},
        "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
        "tenancy": {"isolation": "shared", "rls_column": "organization_id"},
        "models": [
            {
                "key": "Ticket",
                "table": "tickets",
                "label": "Tickets",
                "columns": [
                    {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
                    {"name": "organization_id", "type": "uuid", "not_null": True},
                    {"name": "title", "type": "text", "not_null": True},
                    {"name": "status", "type": "text", "not_null": True, "default": "open"},
                    {"name": "created_at", "type": "timestamptz", "not_null": True, "default": "now()"},
                ],
            },
            {
                "key": "Comment",
                "table": "comments",
                "columns": [
                    {"name": "ticket_id", "type": "uuid", "not_null": True},
                    {"name": "body", "type": "text"},
                ],
                "foreign_keys": [
                    {
                        "columns": ["ticket_id"],
                        "references": {"model": "helpdesk.Ticket", "columns": ["id"]},
                        "policy": "physical",
                        "on_delete": "cascade",
                    }
                ],
            },
        ],
        "contributions": {
            "actions": [
                {
                    "key": "escalate",
                    "label": "Escalate",
                    "handler": {"type": "wasm", "function": "Escalate"},
                    "target_model": "Ticket",
                }
            ],
        },
    }
    doc.update(changes)
    return doc


def flat(**changes):
    doc = {
        "key": "helpdesk",
        "name": "Helpdesk",
        "version": "1.0.0",
        "kernel": ">=2.0.0 <3.0.0",
        "model_definitions": [
            {
                "table_name": "tickets",
                "model_key": "tickets",
                "label": "Tickets",
                "org_scoped": True,
                "soft_delete": True,
                "columns": [
                    {"name": "title", "type": "string", "size": 80, "required": True, "index": True},
                    {"name": "status", "type": "string", "size": 20, "default": "'draft'"},
                    {"name": "total", "type": "decimal", "required": True},
                    {"name": "parent_id", "type": "uuid", "ref": "tickets"},
                ],
            },
        ],
    }
    doc.update(changes)
    return doc


# --- fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES)
def test_every_fixture_validates(path):
    manifest = load_manifest(read_manifest_bytes(path))
    assert manifest.key and manifest.version
    # the JSON snapshot the installer stores reads back as the same Manifest
    assert Manifest.model_validate(json.loads(json.dumps(manifest.model_dump(mode="json")))) == manifest
    for model in manifest.models:
        assert model.columns[0].name == "id" and model.columns[0].primary_key
        assert all(get_type(c.type).name == c.type for c in model.columns)


def test_own_fixtures_use_both_formats_directories_and_tarballs():
    features = set().union(*(manifest_features(p) for p in own_bundles()))
    assert {
        "v3:.apiVersion",
        "flat:.model_definitions",
        "flat:tar.gz",
        "v3:migrations/*.sql",
        "flat:migrations/*.sql",
        "v3:{{TEMPLATE}}",
    } <= features


@pytest.mark.conformance
def test_corpus_is_complete_and_own_fixtures_cover_every_feature_it_uses():
    """Every key path, enumerated value (column type, capability kind, delete rule...),
    packaging and templating the SDK corpus uses, in each format, is used by tests/data/addons
    too: the suite without the corpus exercises all of it."""
    corpus = sdk_bundles()
    assert len([p for p in corpus if p.name.endswith(".tar.gz")]) == 9 and len(corpus) == 23
    used = set().union(*(manifest_features(p) for p in corpus))
    covered = set().union(*(manifest_features(p) for p in own_bundles()))
    assert sorted(used - covered) == []


@pytest.mark.parametrize("path", bundle_params(invalid=True))
def test_invalid_fixture_is_rejected_with_its_reasons(path):
    problems = problems_of(read_manifest_bytes(path))
    assert 'apiVersion: unsupported apiVersion "asteby.com/v2" (expected "asteby.com/v3")' in problems
    assert "backend: unknown field (not allowed here)" in problems


# --- v3 -> internal mapping -----------------------------------------------------------


def test_v3_maps_like_upstream_converter():
    m = load_manifest(v3())
    assert (m.format, m.key, m.name, m.version, m.kernel) == (
        "v3",
        "helpdesk",
        "Helpdesk",
        "1.2.0",
        ">=3.0.0 <4.0.0",
    )
    tickets = m.model("TICKET")
    assert tickets is m.model("tickets")
    assert [c.name for c in tickets.columns] == [
        "id",
        "organization_id",
        "title",
        "status",
        "created_at",
        "updated_at",
    ]
    assert [c.name for c in tickets.columns if c.system] == [
        "id",
        "organization_id",
        "created_at",
        "updated_at",
    ]
    assert tickets.org_scoped and not tickets.soft_delete
    title, status = tickets.column("title"), tickets.column("status")
    assert title.required and title.type == "text" and title.searchable
    assert (status.default, status.has_default, status.default_fn) == ("open", True, None)
    assert tickets.column("created_at").default_fn == "now"
    assert tickets.column("id").default_fn == "uuid"
    # shared tenancy makes every model org-scoped, even without a declared organization_id
    comments = m.model("comments")
    assert comments.org_scoped and comments.label == "Comment"
    assert comments.column("ticket_id").references == Reference(table="tickets", on_delete="cascade")
    action = m.actions[0]
    assert (action.key, action.model, action.handler_type, action.function, action.run_in_tx) == (
        "escalate",
        "tickets",
        "wasm",
        "Escalate",
        True,
    )
    assert m.backend.runtime == "wasm" and m.backend.exports == ("Escalate",)
    assert m.raw == v3()


def test_v3_database_isolation_keeps_declared_tenancy_and_deleted_at_means_soft_delete():
    doc = v3(tenancy={"isolation": "database"})
    doc["models"][0]["columns"].append({"name": "deleted_at", "type": "timestamptz"})
    m = load_manifest(doc)
    tickets, comments = m.model("tickets"), m.model("comments")
    assert m.tenant_isolation == "database"
    assert tickets.org_scoped and tickets.soft_delete and tickets.columns[-1].name == "deleted_at"
    assert not comments.org_scoped and "organization_id" not in [c.name for c in comments.columns]


def test_v3_schema_isolation_scopes_every_table():
    """Schema-per-tenant copies keep `organization_id` too, so the store's filter and RLS stay walls."""
    m = load_manifest(v3(tenancy={"isolation": "schema"}))
    assert m.tenant_isolation == "schema"
    assert all(model.org_scoped for model in m.models)


def test_v3_indices_fold_into_columns_and_composites_stay():
    doc = v3()
    doc["models"][0]["indices"] = [
        {"name": "tickets_status_idx", "columns": ["status"]},
        {"name": "tickets_title_uq", "columns": ["title"], "unique": True},
        {"name": "tickets_org_status", "columns": ["organization_id", "status"], "unique": True},
    ]
    tickets = load_manifest(doc).model("tickets")
    assert tickets.column("status").index and not tickets.column("status").unique
    assert tickets.column("title").unique and not tickets.column("title").index
    assert [(i.name, i.columns, i.unique) for i in tickets.indexes] == [
        ("tickets_org_status", ("organization_id", "status"), True)
    ]


@pytest.mark.parametrize(
    "declared, expected",
    [
        ("open", ("open", None)),
        ("'draft'", ("draft", None)),
        ("'it''s'::text", ("it's", None)),
        ("null", (None, None)),
        ("now()", (None, "now")),
        ("CURRENT_TIMESTAMP", (None, "now")),
    ],
)
def test_text_defaults(declared, expected):
    doc = v3()
    doc["models"][0]["columns"].append({"name": "extra", "type": "text", "default": declared})
    if expected[1] == "now":
        doc["models"][0]["columns"][-1]["type"] = "timestamptz"
    column = load_manifest(doc).model("tickets").column("extra")
    assert (column.default, column.default_fn) == expected
    assert column.has_default == (expected[0] is not None)


@pytest.mark.parametrize(
    "type_, declared, default",
    [
        ("bigint", 0, 0),
        ("integer", "'0'", 0),
        ("boolean", "true", True),
        ("boolean", False, False),
        ("numeric", "1.50", "1.50"),
        ("jsonb", {"a": [1]}, {"a": [1]}),
        ("jsonb", "{}", {}),
        ("date", "2024-02-29", "2024-02-29"),
        ("float8", 1, 1.0),
        ("text", 0, "0"),
    ],
)
def test_literal_defaults_by_type(type_, declared, default):
    doc = v3()
    doc["models"][0]["columns"].append({"name": "extra", "type": type_, "default": declared})
    column = load_manifest(doc).model("tickets").column("extra")
    assert (column.default, column.has_default, column.default_fn) == (default, True, None)


def test_parameterised_types_and_aliases():
    doc = v3()
    doc["models"][0]["columns"] += [
        {"name": "price", "type": "numeric(10,2)"},
        {"name": "code", "type": "varchar(12)"},
        {"name": "plain_price", "type": "money"},
        {"name": "n", "type": "int4"},
        {"name": "flag", "type": "BOOLEAN"},
        {"name": "payload", "type": "object"},
    ]
    t = load_manifest(doc).model("tickets")
    assert (t.column("price").type, t.column("price").precision, t.column("price").scale) == (
        "decimal",
        10,
        2,
    )
    assert (t.column("code").type, t.column("code").size) == ("string", 12)
    assert (t.column("plain_price").precision, t.column("plain_price").scale) == (18, 4)
    assert [t.column(n).type for n in ("n", "flag", "payload")] == ["int", "bool", "json"]


# --- flat format ----------------------------------------------------------------------


def test_flat_format_mapping():
    m = load_manifest(flat())
    t = m.model("tickets")
    assert m.format == "flat" and m.kernel == ">=2.0.0 <3.0.0" and m.tenant_isolation == "shared"
    assert [c.name for c in t.columns] == [
        "id",
        "organization_id",
        "title",
        "status",
        "total",
        "parent_id",
        "created_at",
        "updated_at",
        "deleted_at",
    ]
    assert t.org_scoped and t.soft_delete
    assert (t.column("title").size, t.column("title").index, t.column("title").required) == (80, True, True)
    assert t.column("status").default == "draft"
    assert (t.column("total").precision, t.column("total").scale) == (18, 4)
    assert t.column("parent_id").references.table == "tickets"


def test_flat_actions_hooks_and_lifecycle():
    doc = flat(
        hooks={"tickets::close": "https://hooks.example.com/close"},
        lifecycle_hooks={
            "install": [{"event": "install", "target": {"type": "wasm", "function": "OnInstall"}}]
        },
        backend={"runtime": "wasm", "entry": "backend/app.wasm", "exports": ["Stamp", "OnInstall"]},
        actions={
            "tickets": [
                {"key": "close", "label": "Close"},
                {
                    "key": "stamp",
                    "name": "Stamp",
                    "trigger": {"type": "wasm", "export": "Stamp", "run_in_tx": True},
                    "fields": [{"name": "note", "label": "Note", "type": "text", "required": True}],
                    "icon": "Stamp",
                },
            ]
        },
    )
    m = load_manifest(doc)
    close, stamp = m.actions
    assert (close.handler_type, close.url, close.run_in_tx) == (
        "webhook",
        "https://hooks.example.com/close",
        False,
    )
    assert (stamp.handler_type, stamp.function, stamp.run_in_tx, stamp.fields[0].key) == (
        "wasm",
        "Stamp",
        True,
        "note",
    )
    assert stamp.icon == "Stamp"
    assert m.hooks["on_install"] == "OnInstall"
    assert m.backend.entry == "backend/app.wasm"
    listed = load_manifest(flat(actions=[{"key": "close", "model": "tickets"}]))
    assert listed.actions[0].model == "tickets"


def test_flat_permissions_legacy_shape():
    m = load_manifest(
        flat(
            permissions=[
                {"model": "tickets", "scope": "approve", "reason": "Approvals"},
                {"key": "tickets.export", "label": "Export"},
            ]
        )
    )
    assert [(p.key, p.description) for p in m.permissions] == [
        ("tickets.approve", "Approvals"),
        ("tickets.export", ""),
    ]


# --- templates ------------------------------------------------------------------------


def test_template_placeholders_are_substituted():
    source = read_manifest_bytes(OWN_FIXTURES / "storefront-template")
    default = load_manifest(source)
    assert default.key == "my_addon" and default.models[0].table == "my_addon_products"
    assert default.name == "My Addon"
    m = load_manifest(source, template_values={"ADDON_KEY": "crud", "ADDON_NAME": "Crud"})
    assert m.key == "crud" and m.name == "Crud" and m.models[0].table == "crud_products"
    assert m.capabilities[0].target == "addon_crud.*"
    assert m.models[0].column("name").index  # the templated single-column index folded in
    assert m.raw["metadata"]["key"] == "{{ADDON_KEY}}"  # raw is the manifest as received


def test_runtime_placeholders_are_left_alone():
    m = load_manifest(read_manifest_bytes(OWN_FIXTURES / "weather"))
    assert "{{city}}" in m.tools[0]["endpoint"]


# --- validation -----------------------------------------------------------------------


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _append_column(column, model=0):
    return lambda doc: doc["models"][model]["columns"].append(column)


BAD_V3 = [
    (
        "unknown type",
        _set(["models", 0, "columns", 3, "type"], "blob"),
        'models[0].columns[3].type: unknown type "blob"',
    ),
    (
        "bad column name",
        _set(["models", 0, "columns", 2, "name"], "Title"),
        'models[0].columns[2].name: invalid column name "Title"',
    ),
    (
        "column name with __",
        _set(["models", 0, "columns", 2, "name"], "a__b"),
        'models[0].columns[2].name: invalid column name "a__b"',
    ),
    # Full-match validation: a trailing newline is not a valid end of an identifier (`$` would admit it).
    (
        "column name with trailing newline",
        _set(["models", 0, "columns", 2, "name"], "title\n"),
        'models[0].columns[2].name: invalid column name "title\n"',
    ),
    (
        "table with trailing newline",
        _set(["models", 0, "table"], "tickets\n"),
        'models[0].table: invalid table name "tickets\n"',
    ),
    (
        "model key with trailing newline",
        _set(["models", 0, "key"], "Ticket\n"),
        "models[0].key: invalid model key",
    ),
    (
        "key with trailing newline",
        _set(["metadata", "key"], "helpdesk\n"),
        'metadata.key: invalid addon key "helpdesk\n"',
    ),
    (
        "version with trailing newline",
        _set(["metadata", "version"], "1.2.0\n"),
        'metadata.version: "1.2.0\n" is not a semantic version',
    ),
    (
        "action key with trailing newline",
        _set(["contributions", "actions", 0, "key"], "escalate\n"),
        "contributions.actions[0].key: invalid action key",
    ),
    (
        "reserved column",
        _set(["models", 0, "columns", 2, "name"], "save"),
        'models[0].columns[2].name: column name "save" is reserved',
    ),
    (
        "duplicate column",
        _append_column({"name": "title", "type": "text"}),
        'models[0].columns[5].name: duplicate column "title"',
    ),
    ("duplicate table", _set(["models", 1, "table"], "tickets"), 'models[1]: "tickets" names two models'),
    ("bad table", _set(["models", 0, "table"], "Tickets!"), 'models[0].table: invalid table name "Tickets!"'),
    ("table too long", _set(["models", 0, "table"], "t" * 50), "models[0].table: table name"),
    (
        "dangling reference",
        _set(["models", 1, "foreign_keys", 0, "references", "model"], "helpdesk.Nope"),
        'models[1].foreign_keys[0].references.model: references unknown model "helpdesk.Nope"',
    ),
    (
        "reference to non-uuid",
        _set(["models", 1, "columns", 0, "type"], "text"),
        'models[1].columns[0].type: column "ticket_id" references tickets.id, so it must be uuid',
    ),
    (
        "bad semver",
        _set(["metadata", "version"], "1.0.x"),
        'metadata.version: "1.0.x" is not a semantic version',
    ),
    (
        "bad kernel range",
        _set(["compatibility", "requires", 0, "version"], "three"),
        'compatibility.requires[0].version: "three" is not a version range',
    ),
    ("key with __", _set(["metadata", "key"], "help__desk"), 'metadata.key: invalid addon key "help__desk"'),
    ("key uppercase", _set(["metadata", "key"], "Helpdesk"), 'metadata.key: invalid addon key "Helpdesk"'),
    ("missing version", lambda d: d["metadata"].pop("version"), "metadata.version: required"),
    ("missing compatibility", lambda d: d.pop("compatibility"), "compatibility: required"),
    (
        "columns not a list",
        _set(["models", 0, "columns"], "id,title"),
        "models[0].columns: must be an array, not a string",
    ),
    (
        "not_null not bool",
        _set(["models", 0, "columns", 2, "not_null"], "yes"),
        "models[0].columns[2].not_null: must be a boolean",
    ),
    (
        "stray column field",
        _set(["models", 0, "columns", 2, "nullable"], True),
        "models[0].columns[2].nullable: unknown field",
    ),
    ("wrong kind", _set(["kind"], "Theme"), 'kind: unsupported kind "Theme"'),
    (
        "now() on text",
        _set(["models", 0, "columns", 3, "default"], "now()"),
        "models[0].columns[3].default: default now() does not apply to a text column",
    ),
    (
        "sql expression default",
        _set(["models", 0, "columns", 3, "default"], "lower('X')"),
        "models[0].columns[3].default: unsupported default expression \"lower('X')\"",
    ),
    (
        "bad int default",
        _append_column({"name": "n", "type": "integer", "default": "many"}),
        "models[0].columns[5].default: 'many' is not a valid integer",
    ),
    (
        "system column wrong type",
        _set(["models", 0, "columns", 1, "type"], "text"),
        'models[0].columns[1].type: managed column "organization_id" must be uuid, not text',
    ),
    (
        "second primary key",
        _set(["models", 0, "columns", 2, "primary_key"], True),
        'models[0].columns[2].primary_key: only "id" can be the primary key',
    ),
    (
        "index on unknown column",
        _set(["models", 0, "indices"], [{"name": "x_idx", "columns": ["nope"]}]),
        'models[0].indices[0].columns: unknown column "nope"',
    ),
    (
        "partial unique index",
        _set(
            ["models", 0, "indices"],
            [{"name": "x_uq", "columns": ["title"], "unique": True, "where": "deleted_at IS NULL"}],
        ),
        "models[0].indices[0].where: partial unique indexes are not supported",
    ),
    (
        "unknown capability kind",
        _set(["capabilities"], [{"kind": "fs:write", "target": "x"}]),
        "capabilities[0]: unknown capability kind 'fs:write'",
    ),
    (
        "over-broad capability",
        _set(["capabilities"], [{"kind": "http:fetch", "target": "*"}]),
        "capabilities[0]: http:fetch '*': over-broad pattern",
    ),
    (
        "wasm action without function",
        _set(["contributions", "actions", 0, "handler"], {"type": "wasm"}),
        "contributions.actions[0].handler.function: a wasm handler needs the export name",
    ),
    (
        "action on unknown model",
        _set(["contributions", "actions", 0, "target_model"], "Invoice"),
        'contributions.actions[0]: action "escalate" targets unknown model "Invoice"',
    ),
    (
        "webhook in transaction",
        _set(
            ["contributions", "actions", 0, "handler"],
            {"type": "webhook", "url": "https://x.example.com", "run_in_tx": True},
        ),
        "contributions.actions[0].run_in_tx: a webhook handler cannot run in the request transaction",
    ),
    (
        "unsupported rls column",
        _set(["tenancy", "rls_column"], "tenant_id"),
        'tenancy.rls_column: unsupported rls_column "tenant_id"',
    ),
    (
        "composite foreign key",
        _set(["models", 1, "foreign_keys", 0, "columns"], ["ticket_id", "body"]),
        "models[1].foreign_keys[0].columns: only single-column foreign keys are supported",
    ),
]


@pytest.mark.parametrize("change, expected", [case[1:] for case in BAD_V3], ids=[case[0] for case in BAD_V3])
def test_bad_v3_manifests(change, expected):
    doc = v3()
    change(doc)
    problems = problems_of(doc)
    assert any(line.startswith(expected) for line in problems), problems


BAD_FLAT = [
    (
        "dangling ref",
        _set(["model_definitions", 0, "columns", 3, "ref"], "customers"),
        'model_definitions[0].columns[3].ref: references unknown model "customers"',
    ),
    (
        "missing table_name",
        lambda d: d["model_definitions"][0].pop("table_name"),
        "model_definitions[0].table_name: required",
    ),
    (
        "bad isolation",
        _set(["tenant_isolation"], "per-user"),
        'tenant_isolation: unknown isolation "per-user"',
    ),
    (
        "size not int",
        _set(["model_definitions", 0, "columns", 0, "size"], "80"),
        "model_definitions[0].columns[0].size: must be an integer, not a string",
    ),
    ("missing key", lambda d: d.pop("key"), "key: required"),
    (
        "bad backend runtime",
        _set(["backend"], {"runtime": "binary"}),
        'backend.runtime: unsupported runtime "binary"',
    ),
    (
        "escaping wasm entry",
        _set(["backend"], {"runtime": "wasm", "entry": "../x.wasm"}),
        "backend.entry: invalid entry",
    ),
    (
        "export not declared",
        lambda d: d.update(
            backend={"runtime": "wasm", "exports": ["Other"]},
            actions={"tickets": [{"key": "go", "trigger": {"type": "wasm", "export": "Go"}}]},
        ),
        'actions.tickets[0].trigger.function: "Go" is not in backend.exports',
    ),
]


@pytest.mark.parametrize(
    "change, expected", [case[1:] for case in BAD_FLAT], ids=[case[0] for case in BAD_FLAT]
)
def test_bad_flat_manifests(change, expected):
    doc = flat()
    change(doc)
    problems = problems_of(doc)
    assert any(line.startswith(expected) for line in problems), problems


def test_all_problems_are_reported_at_once():
    doc = v3()
    doc["metadata"]["version"] = "one"
    doc["models"][0]["columns"][2]["type"] = "blob"
    doc["models"][1]["columns"][1]["name"] = "Body"
    error = pytest.raises(ManifestError, load_manifest, doc).value
    assert len(error.problems) == 3
    assert set(error.errors) == {"metadata.version", "models[0].columns[2].type", "models[1].columns[1].name"}
    doc["models"][0]["indices"] = [{"name": "title_idx", "columns": ["title"]}]  # on the broken column
    assert len(pytest.raises(ManifestError, load_manifest, doc).value.problems) == 3
    assert error.status == 400


@pytest.mark.parametrize(
    "source, expected",
    [
        (b"{", "manifest: invalid JSON"),
        (b"[1, 2]", "manifest: must be a JSON object"),
        (b"\xff\xfe", "manifest: not UTF-8"),
        ("{}", "key: required"),
        ('{"key": NaN}', "manifest: invalid JSON: NaN is not a JSON value"),
        ({"key": "x", "extra": [float("inf")]}, "extra[0]: NaN and Infinity are not JSON numbers"),
    ],
)
def test_unreadable_input(source, expected):
    assert problems_of(source)[0].startswith(expected)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
PATHS = [
    ["metadata"],
    ["metadata", "key"],
    ["models"],
    ["models", 0],
    ["models", 0, "columns"],
    ["models", 0, "columns", 2],
    ["models", 0, "columns", 2, "type"],
    ["models", 0, "columns", 3, "default"],
    ["models", 1, "foreign_keys", 0],
    ["models", 0, "indices"],
    ["contributions"],
    ["contributions", "actions", 0],
    ["capabilities"],
    ["tenancy"],
    ["compatibility", "requires"],
    ["rbac"],
    ["settings"],
    ["lifecycle"],
]


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(PATHS), value=JSON_VALUES)
def test_any_json_gives_a_manifest_or_a_manifest_error(path, value):
    doc = v3()
    _set(path, value)(doc)
    try:
        load_manifest(doc)
    except ManifestError as exc:
        assert exc.problems and all(": " in line for line in exc.problems)


# --- column types ---------------------------------------------------------------------


def test_registry_aliases_and_unknown_types():
    assert set(column_types.names()) == {
        "string",
        "text",
        "uuid",
        "int",
        "bigint",
        "float",
        "decimal",
        "bool",
        "date",
        "datetime",
        "json",
    }
    for alias, name in [
        ("varchar", "string"),
        ("integer", "int"),
        ("int8", "bigint"),
        ("double", "float"),
        ("numeric", "decimal"),
        ("boolean", "bool"),
        ("timestamptz", "datetime"),
        ("Timestamp With Time Zone", "datetime"),
        ("jsonb", "json"),
        ("array", "json"),
    ]:
        assert get_type(alias).name == name
    with pytest.raises(UnknownColumnType, match='unknown type "blob"'):
        get_type("blob")


@pytest.mark.parametrize(
    "type_name, raw, value, json_value",
    [
        ("string", "abc", "abc", "abc"),
        ("int", " 42 ", 42, 42),
        ("bigint", "-9000000000", -9000000000, -9000000000),
        ("float", "1.5", 1.5, 1.5),
        ("decimal", "12.50", Decimal("12.50"), "12.50"),
        ("bool", "yes", True, True),
        ("bool", "0", False, False),
        (
            "uuid",
            "12345678-1234-5678-1234-567812345678",
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
        ),
        ("date", "2024-02-29", dt.date(2024, 2, 29), "2024-02-29"),
        (
            "datetime",
            "2024-02-29T10:00:00+02:00",
            dt.datetime(2024, 2, 29, 8, tzinfo=dt.UTC),
            "2024-02-29T10:00:00+02:00",
        ),
        ("json", '{"a": [1]}', {"a": [1]}, {"a": [1]}),
    ],
)
def test_parse_and_to_json(type_name, raw, value, json_value):
    ctype = get_type(type_name)
    parsed = ctype.parse(raw)
    assert parsed == value
    assert ctype.to_json(parsed) == json_value
    assert ctype.to_json(None) is None


def test_naive_datetimes_are_read_as_utc():
    assert get_type("datetime").parse("2024-01-02 03:04").tzinfo is dt.UTC


@pytest.mark.parametrize(
    "type_name, raw, message",
    [
        ("int", "4.5", "'4.5' is not a valid integer"),
        ("int", "3000000000", "3000000000 is out of range for int"),
        ("float", "nan", "'nan' is not a valid number"),
        ("int", "1_000", "'1_000' is not a valid integer"),
        ("decimal", "1,5", "'1,5' is not a valid decimal number"),
        ("decimal", "Infinity", "'Infinity' is not a valid decimal number"),
        ("bool", "maybe", "'maybe' is not a boolean"),
        ("uuid", "123", "'123' is not a valid UUID"),
        ("date", "2024-02-30", "'2024-02-30' is not a valid date"),
        ("datetime", "yesterday", "'yesterday' is not a valid date-time"),
        ("json", "{", "'{' is not valid JSON"),
    ],
)
def test_parse_errors_are_clear(type_name, raw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        get_type(type_name).parse(raw)


def test_text_like_types_and_lookups():
    assert {t.name for t in column_types if t.text_like} == {"string", "text"}
    assert "icontains" in get_type("text").lookups and "icontains" not in get_type("int").lookups
    assert "gt" not in get_type("uuid").lookups and not get_type("json").sortable


def _field(**kwargs):
    column = Column(**kwargs)
    return get_type(column.type).django_field(column)


def test_django_fields():
    pk = _field(name="id", type="uuid", primary_key=True, required=True, default_fn="uuid", system=True)
    assert isinstance(pk, models.UUIDField) and pk.primary_key and pk.default is uuid.uuid4
    status = _field(
        name="status", type="string", size=20, required=True, index=True, default="draft", has_default=True
    )
    assert isinstance(status, models.CharField)
    assert (status.max_length, status.null, status.db_index, status.default, status.db_default) == (
        20,
        False,
        True,
        "draft",
        "draft",
    )
    assert _field(name="s", type="string").max_length == 255
    code = _field(name="code", type="string", unique=True, index=True)
    assert code.unique and not code.db_index and code.null
    total = _field(name="total", type="decimal", precision=10, scale=2, default="1.50", has_default=True)
    assert (total.max_digits, total.decimal_places, total.default) == (10, 2, Decimal("1.50"))
    created = _field(name="created_at", type="datetime", required=True, default_fn="now")
    assert isinstance(created.db_default, Now) and callable(created.default)
    ref = _field(name="parent_id", type="uuid", references=Reference(table="tickets"))
    assert isinstance(ref, models.UUIDField) and ref.db_index and ref.null
    meta = _field(name="meta", type="json", default={"a": []}, has_default=True)
    first, second = meta.default(), meta.default()
    assert first == {"a": []} and first is not second
    assert _field(name="n", type="bigint", default=0, has_default=True).db_default == 0
    assert isinstance(_field(name="d", type="date"), models.DateField)
    assert _field(name="d", type="date", default_fn="now").default() in {
        dt.date.today(),
        timezone.localdate(),
    }
    assert (
        not get_type("datetime")
        .django_field(Column(name="c", type="datetime", default_fn="now"), db_default=False)
        .has_db_default()
    )


def test_openapi_and_describe():
    assert get_type("string").openapi(Column(name="s", type="string", size=80)) == {
        "type": "string",
        "maxLength": 80,
        "nullable": True,
    }
    assert get_type("uuid").openapi() == {"type": "string", "format": "uuid"}
    assert get_type("decimal").openapi()["type"] == "string"
    assert get_type("string").describe(Column(name="s", type="string", size=80)) == "varchar(80)"
    assert (
        get_type("decimal").describe(Column(name="d", type="decimal", precision=10, scale=2))
        == "numeric(10,2)"
    )
    assert get_type("datetime").describe() == "timestamptz"


# --- metacore_validate ----------------------------------------------------------------


def test_validate_command_prints_the_normalised_manifest(capsys):
    bundle = next(p for p in own_bundles() if p.name == "fieldservice-1.0.0.tar.gz")
    call_command("metacore_validate", str(bundle), "--format", "json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["key"] == "fieldservice" and printed["models"][0]["table"] == "work_orders"


def test_validate_command_reports_problems_without_traceback(capsys):
    with pytest.raises(CommandError, match=r"invalid manifest \(2 problems\)") as info:
        call_command("metacore_validate", str(OWN_FIXTURES / OWN_INVALID))
    assert info.value.returncode == 1
    assert capsys.readouterr().err.splitlines() == [
        'apiVersion: unsupported apiVersion "asteby.com/v2" (expected "asteby.com/v3")',
        "backend: unknown field (not allowed here)",
    ]


def test_validate_command_template_values_and_bad_paths(tmp_path, capsys):
    call_command(
        "metacore_validate",
        str(OWN_FIXTURES / "storefront-template"),
        "--set",
        "ADDON_KEY=crud",
        "--format",
        "json",
    )
    assert json.loads(capsys.readouterr().out)["models"][0]["table"] == "crud_products"
    call_command(
        "metacore_validate", str(OWN_FIXTURES / "storefront-template" / "manifest.json"), "--format", "json"
    )
    assert json.loads(capsys.readouterr().out)["key"] == "storefront_template"  # as metacore_install names it
    with pytest.raises(CommandError, match="no such file"):
        call_command("metacore_validate", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="no manifest.json"):
        call_command("metacore_validate", str(tmp_path))
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(CommandError, match="not a readable .tar.gz bundle"):
        call_command("metacore_validate", str(tmp_path / "bad.tar.gz"))


def test_manifest_read_from_nested_tarball_folder(tmp_path):
    folder = tmp_path / "helpdesk-1.0.0"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(flat()))
    bundle = tmp_path / "helpdesk.tgz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(folder, arcname="helpdesk-1.0.0")
    assert load_manifest(read_manifest_bytes(bundle)).key == "helpdesk"
