"""A third-party column type, registered from a host app's `ready()` exactly as
docs/column-types.md shows it, taken through install, CRUD, filters, metadata, OpenAPI and
upgrades (widening and a data-checked conversion) on the test database."""

import json
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.apps import AppConfig
from django.db import connection
from store_support import ORG_A, client_for, fails, make_user, ok

from metacore.kernel import get_kernel
from metacore.schema import ddl
from metacore.schema.types import column_types, get_type, register

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "column-types.md"
BLOCK = re.compile(r"```python\n# colors/(\w+\.py)\n(.*?)```", re.S)
KEY = "palette"
SWATCHES = f"/api/dynamic/{KEY}.swatches"
PERMS = [f"{KEY}.swatches.{a}" for a in ("read", "create", "update", "delete")]


@pytest.fixture
def color_type(tmp_path):
    """The guide's `colors` app, its files written verbatim, made ready as Django would."""
    package = tmp_path / "colors"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, code in BLOCK.findall(GUIDE.read_text()):
        (package / name).write_text(code)
    sys.path.insert(0, str(tmp_path))
    try:
        AppConfig.create("colors.apps.ColorsConfig").ready()
        yield get_type("color")
    finally:
        column_types.unregister("color")
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == "colors" or m.startswith("colors.")]:
            del sys.modules[module]


def bundle(tmp_path, version, columns):
    root = tmp_path / f"{KEY}-{version}"
    root.mkdir()
    manifest = {
        "key": KEY,
        "name": "Palette",
        "version": version,
        "kernel": ">=3.0.0 <4.0.0",
        "model_definitions": [
            {"table_name": "swatches", "model_key": "swatches", "label": "Swatches", "columns": columns}
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


V1 = [
    {"name": "label", "type": "string", "size": 40, "required": True},
    {"name": "tint", "type": "colour"},
    {"name": "legacy", "type": "string", "size": 20},
]


@pytest.fixture
def palette(color_type, tmp_path):
    get_kernel().installer.install(bundle(tmp_path, "1.0.0", V1))
    yield client_for(make_user("painter", ORG_A, perms=PERMS))
    get_kernel().installer.uninstall(KEY, drop_data=True)


def test_the_registry_refuses_a_spelling_another_type_owns(color_type):
    class Shade(type(color_type)):
        name = "shade"
        aliases = ("varchar",)

    with pytest.raises(ValueError, match='"varchar" already belongs to "string"'):
        register(Shade)
    assert get_type("Colour") is color_type


def test_install_and_crud_validate_through_the_type(palette):
    if connection.vendor == "postgresql":
        assert ddl.describe_table(KEY, "swatches").columns["tint"].max_length == 7
    row = ok(palette.post(SWATCHES, {"label": "sky", "tint": "#1e90ff"}, format="json"), 201)["data"]
    assert row["tint"] == "#1e90ff"
    body = fails(palette.post(SWATCHES, {"label": "bad", "tint": "red"}, format="json"), 400)
    assert list(body["errors"]) == ["tint"]
    body = fails(palette.patch(f"{SWATCHES}/{row['id']}", {"tint": "#12345"}, format="json"), 400)
    assert list(body["errors"]) == ["tint"]
    found = ok(palette.get(f"{SWATCHES}?f_tint={quote('eq:#1E90FF')}"))["data"]
    assert [r["id"] for r in found] == [row["id"]]
    body = fails(palette.get(f"{SWATCHES}?f_tint=eq:red"), 400)
    assert "not a colour" in json.dumps(body)


def test_metadata_and_openapi_come_from_the_type(palette):
    table = ok(palette.get(f"/api/metadata/table/{KEY}.swatches"))["data"]
    tint = next(c for c in table["columns"] if c["key"] == "tint")
    assert (tint["type"], tint["cellStyle"]) == ("text", "color")
    modal = ok(palette.get(f"/api/metadata/modal/{KEY}.swatches"))["data"]
    assert next(f for f in modal["fields"] if f["key"] == "tint")["type"] == "color"
    document = json.loads(palette.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    prop = document["components"]["schemas"]["PaletteSwatches"]["properties"]["tint"]
    assert prop["pattern"] == "^#[0-9a-f]{6}$" and prop["nullable"] is True


def test_upgrade_widens_safely_and_checks_rows_before_converting(palette, tmp_path):
    model = get_kernel().registry.resolve(f"{KEY}.swatches").model_class
    model.objects.create(organization_id=ORG_A, label="a", tint="#aabbcc", legacy="#00ff00")
    odd = model.objects.create(organization_id=ORG_A, label="b", tint="#ddeeff", legacy="teal")
    model.objects.create(organization_id=ORG_A, label="c", tint=None, legacy=None)
    v2 = [V1[0], {"name": "tint", "type": "text"}, {"name": "legacy", "type": "color"}]
    plan = get_kernel().installer.plan(bundle(tmp_path, "1.1.0", v2))
    safety = {s.column: s.safety for s in plan.steps}
    assert safety == {"tint": "safe", "legacy": "needs-data-check"}
    assert plan.blocked == ["1 row in swatches.legacy is not a #rrggbb colour"]
    model.objects.filter(pk=odd.pk).update(legacy="#008080")
    get_kernel().installer.upgrade(bundle(tmp_path, "1.2.0", v2))
    rows = ok(palette.get(f"{SWATCHES}?sortBy=label"))["data"]
    assert [(r["tint"], r["legacy"]) for r in rows] == [
        ("#aabbcc", "#00ff00"),
        ("#ddeeff", "#008080"),
        (None, None),
    ]
    ok(palette.post(SWATCHES, {"label": "d", "tint": "any text now"}, format="json"), 201)
    fails(palette.post(SWATCHES, {"label": "e", "legacy": "teal"}, format="json"), 400)


def test_a_host_type_parsing_to_decimal_filters_by_its_own_rules(tmp_path):
    """Decimal bounds belong to the built-in numeric type: a host's own type whose values
    parse to `Decimal` filters through its field, not through numeric's precision check."""
    from decimal import Decimal

    from django.db import models
    from rest_framework import serializers

    from metacore.schema.types import ORDERING_LOOKUPS, ColumnType

    class PercentType(ColumnType):
        name = "percent"
        field_class = models.DecimalField
        serializer_field_class = serializers.DecimalField
        lookups = ORDERING_LOOKUPS
        openapi_schema = {"type": "string", "format": "decimal"}
        example = "12.50"

        def field_kwargs(self, column):
            return {"max_digits": 5, "decimal_places": 2}

        def serializer_kwargs(self, column):
            return {"max_digits": 5, "decimal_places": 2}

        def parse(self, raw):
            return Decimal(str(raw))

        def describe(self, column=None):
            return "numeric(5,2)"

    register(PercentType)
    try:
        get_kernel().installer.install(
            bundle(
                tmp_path, "1.0.0", [{"name": "label", "type": "string"}, {"name": "share", "type": "percent"}]
            )
        )
        client = client_for(make_user("counter", ORG_A, perms=PERMS))
        ok(client.post(SWATCHES, {"label": "half", "share": "50.00"}, format="json"), 201)
        found = ok(client.get(f"{SWATCHES}?f_share=gte:12.5"))["data"]
        assert [r["label"] for r in found] == ["half"]
    finally:
        get_kernel().installer.uninstall(KEY, drop_data=True)
        column_types.unregister("percent")
