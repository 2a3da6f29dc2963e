"""Helpers for the installer tests: fixture discovery, bundle builders, expectations read
back by introspection."""

import io
import json
import tarfile
from pathlib import Path

from addon_fixtures import read_raw
from django.db import connection

from metacore.installer.bundle import template_key
from metacore.manifest.parse import load_manifest
from metacore.schema.naming import physical_index, physical_table

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Canonical column type -> the type the database reports for it (information_schema on
# PostgreSQL, the declared type on SQLite).
DB_TYPES = {
    "postgresql": {
        "string": "character varying",
        "text": "text",
        "uuid": "uuid",
        "int": "integer",
        "bigint": "bigint",
        "float": "double precision",
        "decimal": "numeric",
        "bool": "boolean",
        "date": "date",
        "datetime": "timestamp with time zone",
        "json": "jsonb",
    },
    "sqlite": {
        "string": "varchar",
        "text": "text",
        "uuid": "char",
        "int": "integer",
        "bigint": "bigint",
        "float": "real",
        "decimal": "decimal",
        "bool": "bool",
        "date": "date",
        "datetime": "datetime",
        "json": "text",
    },
}


def manifest_of(path: Path):
    """The Manifest a fixture installs as (template keys filled the way the installer does)."""
    raw = read_raw(path)
    values = {"ADDON_KEY": template_key(path)} if "{{ADDON_KEY}}" in json.dumps(raw) else None
    return load_manifest(raw, template_values=values)


def assert_schema_matches(manifest, describe):
    """Every declared table, column (type, size, nullability), index and foreign key exists."""
    vendor = connection.vendor
    for spec in manifest.models:
        info = describe(manifest.key, spec.table)
        assert info is not None, f"{manifest.key}.{spec.table} missing"
        assert info.physical == physical_table(manifest.key, spec.table, vendor)
        assert list(info.columns) == [c.name for c in spec.columns], spec.table
        for column in spec.columns:
            found = info.columns[column.name]
            where = f"{manifest.key}.{spec.table}.{column.name}"
            assert found.type == DB_TYPES[vendor][column.type], (where, found)
            assert found.nullable is not (column.required or column.primary_key), (where, found)
            if column.type == "string":
                assert found.max_length == (column.size or 255), (where, found)
            if column.type == "decimal" and vendor == "postgresql" and column.precision:
                assert (found.precision, found.scale) == (column.precision, column.scale or 0), (where, found)
            if column.primary_key:
                assert info.index_on(column.name) is not None and info.index_on(column.name).primary_key
            elif column.unique:
                assert info.index_on(column.name, unique=True) is not None, (where, info.indexes)
            elif column.index or column.references is not None:
                assert info.index_on(column.name) is not None, (where, info.indexes)
            if column.references is not None and column.references.physical:
                target = physical_table(manifest.key, column.references.table, vendor).replace('"', "")
                assert any(
                    fk.column == column.name
                    and fk.references_table == target
                    and fk.references_column == "id"
                    for fk in info.foreign_keys
                ), (where, info.foreign_keys)
        for index in spec.indexes:
            found = info.index_on(*index.columns, unique=index.unique)
            assert found is not None, (spec.table, index, info.indexes)
            if index.name:
                assert found.name == physical_index(manifest.key, index.name, vendor)


def targz(entries, *, links=()):
    """A .tar.gz in memory: `entries` maps names to bytes; `links` are (name, target, type)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def small_manifest(key="demo", version="1.0.0", extra_models=()):
    return {
        "key": key,
        "name": key.title(),
        "version": version,
        "kernel": ">=2.0.0 <3.0.0",
        "model_definitions": [
            {
                "table_name": "notes",
                "model_key": "notes",
                "label": "Notes",
                "org_scoped": True,
                "soft_delete": True,
                "columns": [
                    {"name": "title", "type": "string", "size": 80, "required": True, "index": True},
                    {"name": "body", "type": "text"},
                ],
            },
            *extra_models,
        ],
    }
