"""Table/modal metadata derived for every model of every shared SDK fixture."""
import json
import tarfile


from metacore.manifest.parse import load_manifest
from metacore.metadata.derive import INTERNAL, MANAGED, label_column, modal_metadata, table_metadata

TABLE_TYPES = {"text", "number", "boolean", "datetime"}
FORM_TYPES = {"text", "textarea", "number", "boolean", "date", "dynamic_select"}


def fixture_manifests(root):
    for path in sorted((root / "manifests").glob("*/manifest.json")):
        if path.parent.name != "sdk-testdata-v3_invalid":
            yield path.parent.name, path.read_bytes()
    for path in sorted((root / "bundles").glob("*.tar.gz")):
        with tarfile.open(path) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("manifest.json"))
            yield path.name, archive.extractfile(member).read()


def test_every_fixture_model_gets_table_and_modal_metadata(sdk_fixtures):
    seen = 0
    for name, source in fixture_manifests(sdk_fixtures):
        manifest = load_manifest(source, template_values={"ADDON_KEY": "demo", "ADDON_NAME": "Demo"})
        for model in manifest.models:
            seen += 1
            table = json.loads(json.dumps(table_metadata(manifest, model)))  # JSON all the way
            modal = json.loads(json.dumps(modal_metadata(manifest, model)))
            where = f"{name}:{model.key}"
            assert table["title"] == model.label, where
            keys = [c["key"] for c in table["columns"]]
            assert keys == [c.name for c in model.columns if c.name not in INTERNAL], where
            assert all(c["type"] in TABLE_TYPES and c["label"] for c in table["columns"]), where
            assert set(table["searchColumns"]) <= set(keys), where
            assert label_column(model) in {c.name for c in model.columns}, where
            fields = [f["key"] for f in modal["fields"]]
            assert fields == [c.name for c in model.user_columns if c.name not in MANAGED], where
            assert all(f["type"] in FORM_TYPES for f in modal["fields"]), where
            for column in model.columns:
                if column.references is not None:
                    field = next(f for f in modal["fields"] if f["key"] == column.name)
                    assert field["ref"] == f"{manifest.key}.{column.references.table}", where
    assert seen >= 10
