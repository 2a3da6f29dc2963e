"""Test bundles for the management API tests: a small flat-format addon with a model,
navigation bound to it, declared settings and a federated frontend."""

import json
from pathlib import Path

from metacore.installer.signing import Ed25519PrivateKey, public_key_text, sign_bundle, write_bundle

REMOTE_ENTRY = b"export const plugin = 'helpdesk';\n"


def helpdesk_manifest(version="1.0.0", key="helpdesk"):
    return {
        "key": key,
        "name": "Helpdesk",
        "description": "Support tickets",
        "version": version,
        "category": "productivity",
        "kernel": ">=2.0.0 <3.0.0",
        "model_definitions": [
            {
                "table_name": "tickets",
                "model_key": "Tickets",
                "label": "Tickets",
                "org_scoped": True,
                "columns": [
                    {"name": "title", "type": "string", "size": 120, "required": True},
                    {"name": "status", "type": "string", "default": "open"},
                ],
            }
        ],
        "navigation": [
            {
                "title": "sidebar.support",
                "icon": "LifeBuoy",
                "target": "sidebar.operations",
                "items": [
                    {"title": "Tickets", "model": "Tickets", "icon": "Ticket"},
                    {"title": "Help", "url": "/help"},
                ],
            }
        ],
        "settings": [
            {"key": "greeting", "label": "Greeting", "type": "string", "default": "hola"},
            {"key": "sla_hours", "label": "SLA", "type": "number"},
        ],
        "frontend": {"entry": "remoteEntry.js", "format": "federation", "expose": "./plugin"},
    }


def write_source(directory: Path, manifest=None, files=None) -> Path:
    """A bundle directory (manifest.json, README.md, frontend/remoteEntry.js)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest or helpdesk_manifest()))
    contents = {"README.md": b"# Helpdesk\n", "frontend/remoteEntry.js": REMOTE_ENTRY, **(files or {})}
    for relpath, data in contents.items():
        (directory / relpath).parent.mkdir(parents=True, exist_ok=True)
        (directory / relpath).write_bytes(data)
    return directory


class Signer:
    """An ed25519 key plus the TRUSTED_KEYS entry for it."""

    def __init__(self):
        self.private_key = Ed25519PrivateKey.generate()
        self.public = public_key_text(self.private_key.public_key())

    def signed_archive(self, source: Path, target: Path) -> Path:
        target.write_bytes(sign_bundle(source, self.private_key))
        return target


def unsigned_archive(source: Path, target: Path) -> Path:
    manifest = json.loads((source / "manifest.json").read_text())
    contents = {
        p.relative_to(source).as_posix(): p.read_bytes()
        for p in sorted(source.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    target.write_bytes(write_bundle(manifest, contents))
    return target
