"""The v3 manifest format (`apiVersion: asteby.com/v3`, `kind: Addon`), mapped onto the same
internal model as the flat one, the way upstream's `FromV3` converter does.

The v3 JSON schema is strict (`additionalProperties: false`); so is this reader for the
objects it maps (top level, metadata, compatibility, tenancy, capabilities, models,
columns, indices, foreign keys). UI-only column and model properties are accepted and kept
in `raw`.
"""

from __future__ import annotations

from typing import Any

from .columns import IndexDraft, ModelDraft, RefDraft, read_column
from .draft import ActionDraft, ManifestDraft
from .errors import Problems, at
from .reading import Reader

API_VERSION = "asteby.com/v3"
TOP_LEVEL = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "compatibility",
        "tenancy",
        "capabilities",
        "models",
        "frontend",
        "contributions",
        "extension_points",
        "lifecycle",
        "i18n",
        "rbac",
        "settings",
        "billing",
        "preset",
        "theme",
        "connector_pack",
        "connectors",
        "schedules",
        "webhooks",
        "edge_devices",
        "signature",
    }
)
METADATA = frozenset(
    {
        "key",
        "name",
        "description",
        "version",
        "category",
        "icon",
        "author",
        "website",
        "license",
        "readme",
        "screenshots",
        "features",
        "countries",
        "i18n",
    }
)
COMPATIBILITY = frozenset({"requires", "provides"})
REQUIREMENT = frozenset({"key", "version", "optional", "reason"})
TENANCY = frozenset({"isolation", "rls_column"})
CAPABILITY = frozenset({"kind", "target", "reason"})
MODEL = frozenset(
    {
        "key",
        "table",
        "label",
        "columns",
        "indices",
        "foreign_keys",
        "extensions",
        "relations",
        "seed",
        "formulas",
        "locking",
        "sequences",
        "form_layout",
        "stage_field",
        "stages",
        "transitions",
        "on_transition",
        "import",
        "renamed_from",  # metacore: upgrade hint
    }
)
COLUMN = frozenset(
    {
        "name",
        "type",
        "primary_key",
        "not_null",
        "default",
        "label",
        "comment",
        "display",
        "widget",
        "display_config",
        "tooltip",
        "description",
        "ref",
        "options",
        "depends_on",
        "options_source",
        "readonly",
        "scan",
        "constraints",
        "sequence",
        "generated",
        "visible_when",
        "section",
        "validation",
        # metacore extensions, shared with the flat format
        "size",
        "precision",
        "scale",
        "unique",
        "index",
        "searchable",
        "renamed_from",
    }
)
INDEX = frozenset({"name", "columns", "unique", "method", "where"})
FOREIGN_KEY = frozenset({"columns", "references", "policy", "on_delete"})
FOREIGN_KEY_TARGET = frozenset({"model", "columns"})
ISOLATION = ("shared", "schema", "database")
LIFECYCLE = ("install", "uninstall", "enable", "disable")


def is_v3(data: dict[str, Any]) -> bool:
    return any(key in data for key in ("apiVersion", "kind", "metadata"))


def read_v3(data: dict[str, Any], problems: Problems) -> ManifestDraft:
    r = Reader(problems)
    api_version = data.get("apiVersion")
    if api_version != API_VERSION:
        problems.add(
            "apiVersion",
            "required"
            if api_version is None
            else f'unsupported apiVersion "{api_version}" (expected "{API_VERSION}")',
        )
    kind = data.get("kind")
    if kind != "Addon":
        problems.add(
            "kind", "required" if kind is None else f'unsupported kind "{kind}" (only "Addon" installs)'
        )
    r.known_keys(data, TOP_LEVEL, "")

    metadata = r.obj(data.get("metadata"), "metadata", required=True) or {}
    r.known_keys(metadata, METADATA, "metadata")
    key = r.string(metadata, "key", "metadata", required=True, non_empty=True) or ""
    draft = ManifestDraft(
        format="v3",
        key=key,
        key_path="metadata.key",
        version=r.string(metadata, "version", "metadata", required=True) or "",
        version_path="metadata.version",
        name=r.string(metadata, "name", "metadata", required=True, non_empty=True) or key,
        description=r.string(metadata, "description", "metadata", default=""),
    )
    _compatibility(r, data, draft)
    _tenancy(r, data, draft)
    for path, cap in r.objects(data.get("capabilities"), "capabilities"):
        r.known_keys(cap, CAPABILITY, path)
        draft.capabilities.append((path, cap))
    draft.models = [_model(r, path, item) for path, item in r.objects(data.get("models"), "models")]
    draft.frontend = r.obj(data.get("frontend"), "frontend")
    _rbac(r, data, draft)
    draft.settings = [(path, _setting(item)) for path, item in r.objects(data.get("settings"), "settings")]
    _contributions(r, data, draft)
    _events(r, data, draft)
    _lifecycle(r, data, draft)
    _backend(draft, data)
    return draft


def _compatibility(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    compat = r.obj(data.get("compatibility"), "compatibility", required=True) or {}
    r.known_keys(compat, COMPATIBILITY, "compatibility")
    for path, req in r.objects(
        compat.get("requires"), "compatibility.requires", required=bool(compat), min_items=1
    ):
        r.known_keys(req, REQUIREMENT, path)
        req_key = r.string(req, "key", path, required=True)
        version = r.string(req, "version", path, required=True, non_empty=True)
        if req_key == "kernel" and draft.kernel is None:
            draft.kernel, draft.kernel_path = version, at(path, "version")


def _tenancy(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    tenancy = r.obj(data.get("tenancy"), "tenancy") or {}
    r.known_keys(tenancy, TENANCY, "tenancy")
    isolation = r.string(tenancy, "isolation", "tenancy", default="shared")
    if isolation not in ISOLATION:
        r.problems.add("tenancy.isolation", f'unknown isolation "{isolation}" (use {", ".join(ISOLATION)})')
    else:
        draft.tenant_isolation = isolation
    rls_column = r.string(tenancy, "rls_column", "tenancy", default="organization_id")
    if rls_column != "organization_id":
        r.problems.add(
            "tenancy.rls_column",
            f'unsupported rls_column "{rls_column}" (tenant rows are filtered by "organization_id")',
        )


def _model(r: Reader, path: str, item: dict[str, Any]) -> ModelDraft:
    r.known_keys(item, MODEL, path)
    key = r.string(item, "key", path, required=True, non_empty=True) or ""
    model = ModelDraft(
        path=path,
        key=key,
        table=r.string(item, "table", path, required=True, non_empty=True) or "",
        label=r.string(item, "label", path, default="") or key,
        renamed_from=r.string(item, "renamed_from", path),
    )
    for col_path, col in r.objects(item.get("columns"), at(path, "columns"), required=True, min_items=1):
        r.known_keys(col, COLUMN, col_path)
        model.columns.append(read_column(r, col_path, col, required_key="not_null"))
    for idx_path, idx in r.objects(item.get("indices"), at(path, "indices")):
        r.known_keys(idx, INDEX, idx_path)
        model.indexes.append(
            IndexDraft(
                path=idx_path,
                name=r.string(idx, "name", idx_path, required=True),
                columns=r.strings(idx.get("columns"), at(idx_path, "columns")),
                unique=r.boolean(idx, "unique", idx_path),
                partial=idx.get("where") is not None,
            )
        )
        if not idx.get("columns"):
            r.problems.add(at(idx_path, "columns"), "needs at least 1 column")
    _foreign_keys(r, path, item, model)
    return model


def _foreign_keys(r: Reader, path: str, item: dict[str, Any], model: ModelDraft) -> None:
    """Single-column foreign keys become the owning column's reference (as upstream folds them)."""
    by_name = {c.name: c for c in model.columns}
    for fk_path, fk in r.objects(item.get("foreign_keys"), at(path, "foreign_keys")):
        r.known_keys(fk, FOREIGN_KEY, fk_path)
        columns = r.strings(fk.get("columns"), at(fk_path, "columns"))
        target = r.obj(fk.get("references"), at(fk_path, "references"), required=True) or {}
        r.known_keys(target, FOREIGN_KEY_TARGET, at(fk_path, "references"))
        target_model = r.string(target, "model", at(fk_path, "references"), required=True)
        target_columns = r.strings(target.get("columns"), at(fk_path, "references.columns"))
        policy = r.string(fk, "policy", fk_path, required=True)
        if policy is not None and policy not in ("logical", "physical"):
            r.problems.add(at(fk_path, "policy"), f'unknown policy "{policy}" (use logical or physical)')
        if len(columns) != 1 or len(target_columns) > 1:
            r.problems.add(at(fk_path, "columns"), "only single-column foreign keys are supported")
            continue
        column = by_name.get(columns[0])
        if column is None:
            r.problems.add(at(fk_path, "columns"), f'unknown column "{columns[0]}" in model "{model.key}"')
            continue
        if target_model is None:
            continue
        column.reference = RefDraft(
            path=at(fk_path, "references.model"),
            target=target_model,
            column=target_columns[0] if target_columns else "id",
            on_delete=r.string(fk, "on_delete", fk_path, default="restrict"),
            physical=policy != "logical",
        )


def _rbac(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    rbac = r.obj(data.get("rbac"), "rbac") or {}
    for path, perm in r.objects(rbac.get("permissions"), "rbac.permissions"):
        draft.permissions.append(
            (
                path,
                {
                    "key": perm.get("key"),
                    "label": perm.get("label", ""),
                    "description": perm.get("description", ""),
                },
            )
        )


def _setting(item: dict[str, Any]) -> dict[str, Any]:
    """v3 `default` is upstream's `default_value` (mapSettings)."""
    setting = {k: v for k, v in item.items() if k != "default"}
    if "default" in item:
        setting["default_value"] = item["default"]
    return setting


def _contributions(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    contributions = r.obj(data.get("contributions"), "contributions") or {}
    tables = {m.key: m.table for m in draft.models}
    draft.navigation = [
        _resolve_nav(group, tables)
        for _, group in r.objects(contributions.get("navigation"), "contributions.navigation")
    ]
    for path, tool in r.objects(contributions.get("tools"), "contributions.tools"):
        handler: dict[str, Any] = tool["handler"] if isinstance(tool.get("handler"), dict) else {}
        mapped = {"id": tool.get("key"), "name": tool.get("name", tool.get("key")), **tool}
        if handler.get("type") == "webhook" and handler.get("url"):
            mapped.setdefault("endpoint", handler["url"])
        draft.tools.append((path, mapped))
    for path, action in r.objects(contributions.get("actions"), "contributions.actions"):
        handler_path = at(path, "handler")
        handler = r.obj(action.get("handler"), handler_path, required=True) or {}
        handler_type = r.string(handler, "type", handler_path, required=True) or "wasm"
        run_in_tx = action.get("run_in_tx", handler.get("run_in_tx"))
        fields = [
            {**f, "key": f.get("key") or f.get("name")}
            for _, f in r.objects(action.get("fields"), at(path, "fields"))
        ]
        known = {"key", "label", "handler", "target_model", "fields", "modal", "run_in_tx"}
        draft.actions.append(
            ActionDraft(
                path=path,
                handler_path=handler_path,
                key=r.string(action, "key", path, required=True) or "",
                model=r.string(action, "target_model", path, required=True) or "",
                label=r.string(action, "label", path, default="") or "",
                handler_type=handler_type,
                function=r.string(handler, "function", handler_path),
                url=r.string(handler, "url", handler_path),
                run_in_tx=run_in_tx,
                fields=fields,
                modal=action.get("modal") if isinstance(action.get("modal"), str) else None,
                extras={k: v for k, v in action.items() if k not in known},
            )
        )
    subscriptions = contributions.get("subscriptions")
    draft.subscriptions = subscriptions if isinstance(subscriptions, list) else []


def _resolve_nav(group: dict[str, Any], tables: dict[str, str]) -> dict[str, Any]:
    """Model-bound items get the CRUD route `/m/<table>`, as upstream resolves them."""
    resolved = dict(group)
    items = group.get("items")
    if isinstance(items, list):
        resolved["items"] = [
            {**item, "url": f"/m/{tables[item['model']]}"}
            if isinstance(item, dict)
            and not item.get("url")
            and isinstance(item.get("model"), str)
            and item["model"] in tables
            else _resolve_nav(item, tables)
            if isinstance(item, dict)
            else item
            for item in items
        ]
    return resolved


def _events(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    """Published events: extension_points.events plus event:emit targets (upstream mapEvents)."""
    points = r.obj(data.get("extension_points"), "extension_points") or {}
    names = [e.get("name") for _, e in r.objects(points.get("events"), "extension_points.events")]
    names += [cap.get("target") for _, cap in draft.capabilities if cap.get("kind") == "event:emit"]
    draft.events = list(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def _lifecycle(r: Reader, data: dict[str, Any], draft: ManifestDraft) -> None:
    lifecycle = r.obj(data.get("lifecycle"), "lifecycle") or {}
    for event in LIFECYCLE:
        function = r.string(lifecycle, event, "lifecycle")
        if function:
            draft.hooks[f"on_{event}"] = function


def _backend(draft: ManifestDraft, data: dict[str, Any]) -> None:
    """v3 has no backend block: a wasm backend is implied by wasm handlers (upstream deriveBackend)."""
    exports = [a.function for a in draft.actions if a.handler_type == "wasm" and a.function]
    for sub in draft.subscriptions:
        handler = sub.get("handler") if isinstance(sub, dict) else None
        if (
            isinstance(handler, dict)
            and handler.get("type") == "wasm"
            and isinstance(handler.get("function"), str)
        ):
            exports.append(handler["function"])
    if exports:
        exports += [fn for name, fn in draft.hooks.items() if name.startswith("on_")]
        draft.backend = {
            "runtime": "wasm",
            "entry": "backend/backend.wasm",
            "exports": list(dict.fromkeys(exports)),
        }
        draft.backend_path = "contributions.actions"
