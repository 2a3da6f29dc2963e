"""The flat manifest format (`key`, `version`, `model_definitions[]`, ...) published bundles use.

Unknown top-level fields are kept in `raw` and otherwise ignored, as upstream's Go decoder does;
the fields read here are type-checked.
"""

from __future__ import annotations

from typing import Any

from .columns import IndexDraft, ModelDraft, RefDraft, read_column
from .draft import ActionDraft, ManifestDraft
from .errors import Problems, at
from .reading import Reader

TENANT_ISOLATION = {
    "": "shared",
    "shared": "shared",
    "schema-per-tenant": "schema",
    "database-per-tenant": "database",
}
LIFECYCLE_EVENTS = ("install", "uninstall", "enable", "disable", "upgrade")


def read_flat(data: dict[str, Any], problems: Problems) -> ManifestDraft:
    r = Reader(problems)
    key = r.string(data, "key", "", required=True, non_empty=True) or ""
    isolation = r.string(data, "tenant_isolation", "", default="shared")
    if isolation not in TENANT_ISOLATION:
        problems.add(
            "tenant_isolation",
            f'unknown isolation "{isolation}" (use shared, schema-per-tenant or database-per-tenant)',
        )
    draft = ManifestDraft(
        format="flat",
        key=key,
        key_path="key",
        version=r.string(data, "version", "", required=True) or "",
        version_path="version",
        name=r.string(data, "name", "", required=True, non_empty=True) or key,
        description=r.string(data, "description", "", default=""),
        kernel=r.string(data, "kernel", ""),
        kernel_path="kernel",
        tenant_isolation=TENANT_ISOLATION.get(isolation, "shared"),
    )
    draft.models = [
        _model(r, path, item) for path, item in r.objects(data.get("model_definitions"), "model_definitions")
    ]
    draft.capabilities = r.objects(data.get("capabilities"), "capabilities")
    draft.permissions = [
        (path, _permission(item)) for path, item in r.objects(data.get("permissions"), "permissions")
    ]
    draft.settings = [(path, dict(item)) for path, item in r.objects(data.get("settings"), "settings")]
    draft.navigation = [item for _, item in r.objects(data.get("navigation"), "navigation")]
    draft.tools = [(path, dict(item)) for path, item in r.objects(data.get("tools"), "tools")]
    draft.events = r.strings(data.get("events"), "events")
    draft.frontend = r.obj(data.get("frontend"), "frontend")
    hooks = r.obj(data.get("hooks"), "hooks") or {}
    for name, target in hooks.items():
        if isinstance(target, str):
            draft.hooks[name] = target
        else:
            problems.add(at("hooks", name), "must be a string (an export name or a URL)")
    _lifecycle_hooks(r, data.get("lifecycle_hooks"), draft)
    backend = r.obj(data.get("backend"), "backend")
    if backend is not None:
        draft.backend = backend
        draft.backend_path = "backend"
    draft.actions = _actions(r, data.get("actions"), draft)
    return draft


def _model(r: Reader, path: str, item: dict[str, Any]) -> ModelDraft:
    table = r.string(item, "table_name", path, required=True, non_empty=True) or ""
    key = r.string(item, "model_key", path, default=table) or table
    model = ModelDraft(
        path=path,
        key=key,
        table=table,
        label=r.string(item, "label", path, default="") or key,
        org_scoped=r.boolean(item, "org_scoped", path),
        soft_delete=r.boolean(item, "soft_delete", path),
        renamed_from=r.string(item, "renamed_from", path),
        table_meta=r.obj(item.get("table"), at(path, "table")),
        modal_meta=r.obj(item.get("modal"), at(path, "modal")),
    )
    columns_path = at(path, "columns")
    for col_path, col in r.objects(item.get("columns"), columns_path, required=True):
        model.columns.append(
            read_column(r, col_path, col, required_key="required", reference=_reference(r, col_path, col))
        )
    for idx_path, idx in r.objects(item.get("indexes", item.get("indices")), at(path, "indexes")):
        model.indexes.append(
            IndexDraft(
                path=idx_path,
                name=r.string(idx, "name", idx_path),
                columns=r.strings(idx.get("columns"), at(idx_path, "columns")),
                unique=r.boolean(idx, "unique", idx_path),
            )
        )
    return model


def _reference(r: Reader, path: str, col: dict[str, Any]) -> RefDraft | None:
    """`ref: "orders"` (upstream) or `references: "orders"` / `{table, column, on_delete}`."""
    for key in ("references", "ref"):
        value = col.get(key)
        if value is None or value == "":
            continue
        ref_path = at(path, key)
        if isinstance(value, str):
            return RefDraft(path=ref_path, target=value)
        spec = r.obj(value, ref_path)
        if spec is None:
            return None
        target = r.string(spec, "table", ref_path) or r.string(spec, "model", ref_path, required=True)
        if target is None:
            return None
        return RefDraft(
            path=ref_path,
            target=target,
            column=r.string(spec, "column", ref_path, default="id"),
            on_delete=r.string(spec, "on_delete", ref_path, default="restrict"),
        )
    return None


def _permission(item: dict[str, Any]) -> dict[str, Any]:
    """Upstream's legacy `{model, scope, reason}` or `{key, label, description}`."""
    if "key" in item or "model" not in item:
        return {
            "key": item.get("key"),
            "label": item.get("label", ""),
            "description": item.get("description", ""),
        }
    key = f"{item.get('model')}.{item.get('scope')}" if item.get("scope") else item.get("model")
    return {"key": key, "label": "", "description": item.get("reason", "")}


def _lifecycle_hooks(r: Reader, value: Any, draft: ManifestDraft) -> None:
    """`lifecycle_hooks: {install: [{target: {function|url}}]}` -> hooks["on_install"]."""
    hooks = r.obj(value, "lifecycle_hooks") or {}
    for event, defs in hooks.items():
        event_path = at("lifecycle_hooks", event)
        if event not in LIFECYCLE_EVENTS:
            r.problems.add(event_path, f"unknown lifecycle event (use one of {', '.join(LIFECYCLE_EVENTS)})")
            continue
        for hook_path, hook in r.objects(defs, event_path)[:1]:
            target = r.obj(hook.get("target"), at(hook_path, "target"), required=True) or {}
            handler = target.get("function") or target.get("url")
            if isinstance(handler, str) and handler:
                draft.hooks[f"on_{event}"] = handler
            else:
                r.problems.add(at(hook_path, "target"), "needs a function or a url")


def _actions(r: Reader, value: Any, draft: ManifestDraft) -> list[ActionDraft]:
    """`actions: {model: [action, ...]}` (upstream) or a list of actions naming their `model`."""
    pairs: list[tuple[str, str | None, dict[str, Any]]] = []
    if isinstance(value, dict):
        for model, actions in value.items():
            for path, action in r.objects(actions, at("actions", model)):
                pairs.append((path, model, action))
    elif value is not None:
        for path, action in r.objects(value, "actions"):
            pairs.append((path, None, action))
    runtime = (draft.backend or {}).get("runtime")
    actions = []
    for path, model, action in pairs:
        model = model or r.string(action, "model", path, required=True) or ""
        key = r.string(action, "key", path, required=True) or ""
        trigger = r.obj(action.get("trigger"), at(path, "trigger")) or {}
        handler_path = at(path, "trigger")
        hook_url = draft.hooks.get(f"{model}::{key}")
        if trigger:
            handler_type = r.string(trigger, "type", handler_path, required=True) or "wasm"
            function = r.string(trigger, "export", handler_path)
            url = r.string(trigger, "url", handler_path, default=hook_url)
            run_in_tx = trigger.get("run_in_tx")
        elif hook_url is not None or runtime != "wasm":
            handler_type, function, url, run_in_tx = "webhook", None, hook_url, None
        else:
            handler_type, function, url, run_in_tx = "wasm", key, None, None
        fields = [
            {**field, "key": field.get("key") or field.get("name")}
            for _, field in r.objects(action.get("fields"), at(path, "fields"))
        ]
        extras = {
            k: v
            for k, v in action.items()
            if k not in {"key", "model", "trigger", "fields", "label", "modal"}
        }
        actions.append(
            ActionDraft(
                path=path,
                handler_path=handler_path,
                key=key,
                model=model,
                label=r.string(action, "label", path) or r.string(action, "name", path) or key,
                handler_type=handler_type,
                function=function,
                url=url,
                run_in_tx=run_in_tx,
                fields=fields,
                modal=r.string(action, "modal", path),
                extras=extras,
            )
        )
    return actions
