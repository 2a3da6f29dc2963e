"""A small flat-format addon (two org-scoped models, a reference, a soft-delete table, an
action) installed and uninstalled through the real installer, for the permission and
metadata tests."""

import json
import tempfile
from pathlib import Path

import pytest

from metacore.kernel import get_kernel


@pytest.fixture(autouse=True)
def fresh_registry():
    """Tests roll back (or flush) RegistryState, so a revision number can come back with other
    contents: start and leave with an invalidated registry."""
    get_kernel().registry.invalidate()
    yield
    get_kernel().registry.invalidate()


def model(key, table, columns, **extra):
    return {
        "model_key": key,
        "table_name": table,
        "label": extra.pop("label", key),
        "org_scoped": True,
        "columns": list(columns),
        **extra,
    }


def helpdesk_manifest(key="helpdesk", version="1.0.0", table_meta=None, extra_models=()):
    tickets = model(
        "Tickets",
        "tickets",
        [
            {"name": "title", "type": "varchar(120)", "required": True},
            {"name": "status", "type": "string", "size": 20, "required": True, "default": "open"},
            {"name": "priority", "type": "integer"},
            {"name": "customer_id", "type": "uuid", "ref": "customers"},
            {"name": "notes", "type": "text"},
            {"name": "due_on", "type": "date"},
            {"name": "billable", "type": "boolean"},
            {"name": "amount", "type": "numeric(10,2)"},
            {"name": "tags", "type": "jsonb"},
        ],
        soft_delete=True,
    )
    if table_meta is not None:
        tickets["table"] = table_meta
    customers = model(
        "Customers",
        "customers",
        [
            {"name": "name", "type": "string", "size": 80, "required": True, "label": "Customer name"},
            {"name": "email", "type": "string", "size": 120},
        ],
    )
    return {
        "key": key,
        "name": key.title(),
        "version": version,
        "model_definitions": [tickets, customers, *extra_models],
        "actions": {
            "Tickets": [
                {
                    "key": "close",
                    "label": "Close ticket",
                    "trigger": {"type": "wasm", "export": "close"},
                    "fields": [{"key": "reason", "label": "Reason", "type": "text", "required": True}],
                }
            ]
        },
    }


def install(manifest: dict):
    """Install `manifest` (a flat manifest dict) as a bundle directory; returns its key."""
    with tempfile.TemporaryDirectory(prefix=f"bundle-{manifest['key']}-") as root:
        (Path(root) / "manifest.json").write_text(json.dumps(manifest))
        get_kernel().installer.install(root)
    return manifest["key"]


def upgrade(manifest: dict):
    with tempfile.TemporaryDirectory(prefix=f"bundle-{manifest['key']}-") as root:
        (Path(root) / "manifest.json").write_text(json.dumps(manifest))
        get_kernel().installer.upgrade(root)


def uninstall(manifest: dict):
    get_kernel().installer.uninstall(manifest["key"], drop_data=True)
