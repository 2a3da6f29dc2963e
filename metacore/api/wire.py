"""JSON shapes of the management API, as `@asteby/metacore-sdk`'s MarketplaceClient reads them.

The client types manifests as the legacy flat (`LegacyManifest`) shape, so v3 manifests are
presented flat here; flat manifests are served as received. docs/management-api.md lists
every shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from metacore.installer.secrets import masked_settings
from metacore.manifest.model import Column, Manifest, Model

if TYPE_CHECKING:
    from metacore.models import Installation, OrganizationInstallation

# Top-level keys the shell does not need (`GET /manifests?lite=1`).
HEAVY_KEYS = ("model_definitions", "actions", "i18n")
# Manifest.tenant_isolation -> the flat format's spelling.
FLAT_ISOLATION = {"shared": "shared", "schema": "schema-per-tenant", "database": "database-per-tenant"}


def flat_manifest(manifest: Manifest, *, lite: bool = False) -> dict[str, Any]:
    flat = dict(manifest.raw) if manifest.format == "flat" else _flat_from_v3(manifest)
    flat.setdefault("key", manifest.key)
    flat.setdefault("name", manifest.name)
    flat.setdefault("version", manifest.version)
    flat.setdefault("description", manifest.description)
    if lite:
        for key in HEAVY_KEYS:
            flat.pop(key, None)
    return flat


def raw_flat_manifest(raw: dict[str, Any]) -> dict[str, Any]:
    """A manifest that did not validate (catalog entries that are not installable): shown as
    far as it can be read, never parsed."""
    if "metadata" not in raw:
        return dict(raw)
    metadata = raw.get("metadata") or {}
    return {
        "key": metadata.get("key", ""),
        "name": metadata.get("name", ""),
        "version": metadata.get("version", ""),
        "description": metadata.get("description", ""),
        "category": metadata.get("category", ""),
    }


def _flat_from_v3(manifest: Manifest) -> dict[str, Any]:
    raw = manifest.raw
    metadata = raw.get("metadata") or {}
    contributions = raw.get("contributions") or {}
    icon = metadata.get("icon")
    flat = {
        "key": manifest.key,
        "name": manifest.name,
        "description": manifest.description,
        "version": manifest.version,
        "category": metadata.get("category", ""),
        "kernel": manifest.kernel or "",
        "tenant_isolation": FLAT_ISOLATION.get(manifest.tenant_isolation, manifest.tenant_isolation),
        "navigation": list(contributions.get("navigation") or manifest.navigation),
        "settings": list(raw.get("settings") or manifest.settings),
        "tools": list(contributions.get("tools") or manifest.tools),
        "capabilities": [c.model_dump() for c in manifest.capabilities],
        "permissions": [p.model_dump() for p in manifest.permissions],
        "model_definitions": [_model_definition(model) for model in manifest.models],
        "actions": _actions_by_model(manifest),
        "hooks": dict(manifest.hooks),
        "events": list(manifest.events),
    }
    if isinstance(icon, dict):
        flat.update(
            icon=icon.get("slug", ""),
            icon_type=icon.get("type", ""),
            icon_slug=icon.get("slug", ""),
            icon_color=str(icon.get("color", "")).lstrip("#"),
        )
    elif icon:
        flat["icon"] = icon
    for key in ("author", "website", "license", "features", "screenshots", "countries"):
        if key in metadata:
            flat[key] = metadata[key]
    for key in ("frontend", "backend", "i18n", "signature"):
        if raw.get(key) is not None:
            flat[key] = raw[key]
    return flat


def _model_definition(model: Model) -> dict[str, Any]:
    definition = {
        "table_name": model.table,
        "model_key": model.key,
        "label": model.label,
        "org_scoped": model.org_scoped,
        "soft_delete": model.soft_delete,
        "columns": [_column(column) for column in model.user_columns],
    }
    if model.table_meta:
        definition["table"] = model.table_meta
    if model.modal_meta:
        definition["modal"] = model.modal_meta
    return definition


def _column(column: Column) -> dict[str, Any]:
    out: dict[str, Any] = {"name": column.name, "type": column.type}
    if column.size:
        out["size"] = column.size
    for flag in ("required", "unique", "index", "searchable"):
        if getattr(column, flag):
            out[flag] = True
    if column.has_default:
        out["default"] = column.default
    if column.references:
        out["ref"] = column.references.table
    return out


def _actions_by_model(manifest: Manifest) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for action in manifest.actions:
        grouped.setdefault(action.model, []).append(action.model_dump(exclude_none=True))
    return grouped


def installation(
    inst: Installation,
    *,
    organization_id: str | UUID | None = None,
    manager: bool = False,
    own: OrganizationInstallation | None = None,
) -> dict[str, Any]:
    """One installation (the SDK's `Installation`, plus metacore's own fields), as the
    organization sees it: with its own installation (`own`), that one's state and its
    settings over the host-wide ones. Settings, tools, credential names and capabilities
    are for users who may manage addons (`manager`), and even they see secret settings
    only as a mask."""
    status = inst.state
    if own is not None and inst.state == "enabled" and not own.enabled:
        status = "disabled"
    settings = {**inst.settings, **own.settings} if own is not None else inst.settings
    body: dict[str, Any] = {
        "id": str(inst.pk),
        "organization_id": str(organization_id) if organization_id else None,
        "addon_key": inst.key,
        "key": inst.key,
        "name": inst.name,
        "version": inst.version,
        "status": status,
        "source": "bundle",
        "revision": inst.revision,
        "every_organization": inst.every_organization,
        "installed_at": (own or inst).installed_at.isoformat() if (own or inst).installed_at else None,
        "updated_at": (own or inst).updated_at.isoformat() if (own or inst).updated_at else None,
    }
    if manager:
        body.update(
            {
                "settings": masked_settings(Manifest.model_validate(inst.manifest), settings),
                "selected_tools": inst.selected_tools,
                "credential_keys": sorted(inst.credentials),
                "capabilities": inst.capabilities,
            }
        )
    return body
