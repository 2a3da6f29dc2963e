"""The merged sidebar of enabled addons (`GET /api/metacore/navigation`).

Upstream semantics (kernel `navigation.Build`): groups sharing a `target` merge into one,
items keep their addon as `owner`, groups without a title land in a `sidebar.addons` group.
Here an item bound to a `model` points at `/m/<table>` and is shown only to callers who may
read that model; an item with a `permission` only to callers holding it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from metacore.permissions.naming import declared_permission, model_permission

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest
    from metacore.permissions.service import PermissionService, User

#: A sidebar group or item (JSON, as the manifest declares it plus `owner`/`url`).
Entry = dict[str, Any]

ORPHAN_GROUP = {"title": "sidebar.addons", "icon": "Puzzle"}


def build_navigation(
    manifests: Iterable[Manifest], user: User | None, permissions: PermissionService
) -> list[Entry]:
    """`manifests`: the enabled addons' Manifests; `permissions`: the kernel's permission service."""
    groups: list[Entry] = []
    by_target: dict[str, Entry] = {}
    orphans: list[Entry] = []
    for manifest in sorted(manifests, key=lambda m: m.key):
        for group in manifest.navigation:
            items = _items(group.get("items") or [], manifest, user, permissions)
            if not items:
                continue
            target = group.get("target") or ""
            if target and target in by_target:
                by_target[target]["items"].extend(items)
                continue
            if not str(group.get("title") or "").strip():
                orphans.extend(items)
                continue
            merged = {"title": group["title"], "icon": group.get("icon") or "", "items": items}
            if target:
                merged["target"] = target
                by_target[target] = merged
            groups.append(merged)
    if orphans:
        groups.append({**ORPHAN_GROUP, "items": orphans})
    return groups


def _items(
    raw_items: Iterable[object], manifest: Manifest, user: User | None, permissions: PermissionService
) -> list[Entry]:
    out = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            continue
        item = {k: v for k, v in raw.items() if k != "items"}
        item["owner"] = f"addon:{manifest.key}"
        model_name = raw.get("model")
        if model_name:
            model = manifest.model(str(model_name))
            if model is None:
                continue
            if not permissions.has(user, model_permission(manifest.key, model.table, "read")):
                continue
            item["url"] = f"/m/{model.table}"
        permission = raw.get("permission")
        if permission and not permissions.has(user, declared_permission(manifest.key, str(permission))):
            continue
        children = _items(raw.get("items") or [], manifest, user, permissions)
        if children:
            item["items"] = children
        elif raw.get("items") and not model_name and not raw.get("url"):
            continue  # a folder whose every child is hidden
        out.append(item)
    return out
