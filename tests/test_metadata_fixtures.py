"""Table/modal metadata derived for every model of every addon fixture (own and SDK corpus)."""

import json

import pytest
from addon_fixtures import bundle_sets, read_raw

from metacore.manifest.parse import load_manifest
from metacore.metadata.derive import INTERNAL, MANAGED, label_column, modal_metadata, table_metadata

TABLE_TYPES = {"text", "number", "boolean", "datetime"}
FORM_TYPES = {"text", "textarea", "number", "boolean", "date", "dynamic_select"}


@pytest.mark.parametrize("bundles", bundle_sets())
def test_every_fixture_model_gets_table_and_modal_metadata(bundles):
    seen = 0
    for path in bundles:
        name = path.name
        manifest = load_manifest(read_raw(path), template_values={"ADDON_KEY": "demo", "ADDON_NAME": "Demo"})
        for model in manifest.models:
            seen += 1
            table = json.loads(json.dumps(table_metadata(manifest, model)))  # JSON all the way
            modal = json.loads(json.dumps(modal_metadata(manifest, model)))
            where = f"{name}:{model.key}"
            assert table["title"] == model.label, where
            keys = [c["key"] for c in table["columns"]]
            assert keys == [c.name for c in model.columns if c.name not in INTERNAL], where
            assert all(c["type"] in TABLE_TYPES and c["label"] for c in table["columns"]), where
            assert set(table.get("searchColumns", [])) <= set(keys), (
                where
            )  # omitted when nothing is searchable
            assert label_column(model) in {c.name for c in model.columns}, where
            fields = [f["key"] for f in modal["fields"]]
            assert fields == [c.name for c in model.user_columns if c.name not in MANAGED], where
            assert all(f["type"] in FORM_TYPES for f in modal["fields"]), where
            for column in model.columns:
                if column.references is not None:
                    field = next(f for f in modal["fields"] if f["key"] == column.name)
                    assert field["ref"] == f"{manifest.key}.{column.references.table}", where
    assert seen >= 4
