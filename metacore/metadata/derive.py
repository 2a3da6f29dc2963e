"""Upstream-shaped UI metadata derived from a manifest Model.

The shapes are the kernel's `modelbase.TableMetadata` / `ModalMetadata` (camelCase JSON keys
the SDK's DynamicTable / DynamicModal read). A manifest's own `table` / `modal` block is
laid over the derived one key by key, so an author overrides only what they declare.
Pure functions: no database, no request.
"""

from __future__ import annotations

from typing import Any

from metacore.conf import metacore_settings
from metacore.manifest.model import Action, Column, Manifest, Model
from metacore.schema.types import get_type
from metacore.store.query import search_columns as store_search_columns

#: Columns no form ever edits (kernel-managed).
MANAGED = frozenset({"id", "organization_id", "created_at", "updated_at", "deleted_at"})
#: Columns never shown in a table (internal plumbing).
INTERNAL = frozenset({"organization_id", "deleted_at"})
#: Name-like columns, in preference order, that label a row in options and search.
LABEL_PREFERENCE = (
    "name",
    "title",
    "label",
    "display_name",
    "full_name",
    "code",
    "number",
    "reference",
    "slug",
    "email",
    "subject",
    "description",
)
LONG_TEXT = frozenset(
    {
        "description",
        "notes",
        "note",
        "comment",
        "comments",
        "body",
        "content",
        "address",
        "message",
        "summary",
        "bio",
        "remarks",
        "details",
    }
)
MONEY = ("price", "amount", "total", "cost", "subtotal", "balance", "paid")


def humanize(name: str) -> str:
    """`assignee_id` -> `Assignee`, `resolved_at` -> `Resolved At`."""
    words = name.split("_")
    if len(words) > 1 and words[-1] == "id":
        words = words[:-1]
    return " ".join(w.capitalize() for w in words if w)


def column_label(column: Column) -> str:
    return column.label or humanize(column.name)


def ui_type(column: Column) -> str:
    """Table cell type (upstream `ColumnUIType`): the column type's."""
    return get_type(column.type).ui_type


def form_type(column: Column) -> str:
    """Form widget type (upstream `FormFieldType` plus its reference/long-text rules)."""
    if column.references is not None:
        return "dynamic_select"
    kind = get_type(column.type).form_type
    return "textarea" if kind == "text" and column.name in LONG_TEXT else kind


def filter_type(column: Column) -> str:
    """Filter widget type: a select over the referenced rows, else the column type's."""
    return "select" if column.references is not None else get_type(column.type).filter_type


def cell_style(column: Column) -> str | None:
    """A richer cell renderer guessed from the name, else the type's (upstream `inferCellStyle`)."""
    name = column.name.lower()
    ctype = get_type(column.type)
    if name.endswith("_at") or ctype.ui_type == "datetime":
        return "date"
    for style, names in (
        ("url", ("url", "website", "link")),
        ("email", ("email",)),
        ("phone", ("phone", "tel")),
        ("status", ("status", "state")),
        ("color", ("color",)),
        ("image", ("image", "photo", "logo")),
        ("creator", ("created_by", "updated_by", "owner", "author")),
    ):
        if name in names:
            return style
    if name.endswith(("_url", "_link")):
        return "url"
    if name.endswith(("_image", "_photo", "avatar")):
        return "image"
    if name.endswith("_by"):
        return "creator"
    if ctype.ui_type == "number" and (name in MONEY or name.endswith(tuple(f"_{m}" for m in MONEY))):
        return "currency"
    return ctype.cell_style


def ref(manifest: Manifest, column: Column, model: Model | None = None) -> str | None:
    """Qualified `<addon>.<table>` of the referenced model: what `/options/<ref>?field=id` takes.
    Without a reference, a `belongs_to` entry of the model's `relations[]` whose `foreign_key`
    is the column names it by `through` (upstream `AutoDeriveColumnRefs`)."""
    if column.references is not None:
        return f"{manifest.key}.{column.references.table}"
    through = relation_targets(manifest, model).get(column.name) if model is not None else None
    if not through:
        return None
    target = manifest.model(through)
    return f"{manifest.key}.{target.table}" if target is not None else through


def relation_targets(manifest: Manifest, model: Model) -> dict[str, str]:
    """`{foreign_key: through}` of the model's `belongs_to` relations in the raw manifest."""
    raw = manifest.raw or {}
    entries = raw.get("models") or raw.get("model_definitions") or []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        if model.key in (entry.get("key"), entry.get("model_key")) or model.table in (
            entry.get("table"),
            entry.get("table_name"),
        ):
            found: dict[str, str] = {}
            for relation in entry.get("relations") or ():
                if (
                    isinstance(relation, dict)
                    and str(relation.get("kind", "")).lower() == "belongs_to"
                    and relation.get("foreign_key")
                    and relation.get("through")
                ):
                    found.setdefault(str(relation["foreign_key"]), str(relation["through"]))
            return found
    return {}


def search_columns(model: Model) -> list[str]:
    """Columns `search` matches: the store's own rule, so the UI and the API agree."""
    return [c.name for c in store_search_columns(model)]


def label_column(model: Model) -> str:
    """The column that labels a row in options and search results."""
    names = {c.name for c in model.columns}
    for candidate in LABEL_PREFERENCE:
        if candidate in names:
            return candidate
    text = [c.name for c in model.user_columns if get_type(c.type).text_like]
    return text[0] if text else "id"


def model_actions(manifest: Manifest, model: Model) -> list[Action]:
    wanted = {
        model.key.lower(),
        model.table.lower(),
        f"{manifest.key}.{model.key}".lower(),
        f"{manifest.key}.{model.table}".lower(),
    }
    return [a for a in manifest.actions if a.model.lower() in wanted]


def action_def(action: Action) -> dict[str, Any]:
    """Upstream `ActionDef` for a manifest action (its extra keys, e.g. icon, ride along)."""
    extra = {k: v for k, v in (action.model_extra or {}).items() if v not in (None, "", [], {})}
    out = {"key": action.key, "name": action.key, "label": action.label or humanize(action.key), **extra}
    if action.modal:
        out["modal"] = action.modal
    if action.fields:
        out["fields"] = [
            {
                k: v
                for k, v in {
                    "key": f.key,
                    "label": f.label or humanize(f.key),
                    "type": f.type,
                    "required": f.required or None,
                    **(f.model_extra or {}),
                }.items()
                if v is not None
            }
            for f in action.fields
        ]
    out["trigger"] = {
        "type": action.handler_type,
        **({"export": action.function} if action.function else {}),
        **({"run_in_tx": True} if action.run_in_tx else {}),
    }
    return out


def _overlay(derived: dict[str, Any], block: dict[str, Any] | None) -> dict[str, Any]:
    return {**derived, **block} if block else derived


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop empty optional keys, as the upstream `omitempty` tags do."""
    return {k: v for k, v in d.items() if v not in (None, False, "", [], {})}


def table_metadata(manifest: Manifest, model: Model) -> dict[str, Any]:
    columns = []
    filters = []
    for column in model.columns:
        if column.name in INTERNAL:
            continue
        col_type = get_type(column.type)
        columns.append(
            _compact(
                {
                    "key": column.name,
                    "label": column_label(column),
                    "type": ui_type(column),
                    "sortable": col_type.sortable,
                    "filterable": True,
                    "cellStyle": cell_style(column),
                    "ref": ref(manifest, column, model),
                    "hidden": column.name == "id",
                    "readonly": column.system,
                }
            )
        )
        if not column.system:
            filters.append(
                {
                    "key": column.name,
                    "label": column_label(column),
                    "type": filter_type(column),
                    "column": column.name,
                }
            )
    max_per_page = metacore_settings.MAX_PER_PAGE
    derived = {
        "title": model.label,
        "columns": columns,
        "searchColumns": search_columns(model),
        "filters": filters,
        "actions": [action_def(a) for a in model_actions(manifest, model)],
        "enableCRUDActions": True,
        "perPageOptions": [n for n in (10, 20, 50, 100) if n <= max_per_page] or [max_per_page],
        "defaultPerPage": metacore_settings.DEFAULT_PER_PAGE,
    }
    result = _compact(_overlay(derived, model.table_meta))
    result.setdefault("title", model.label)
    result.setdefault("columns", [])
    return result


def modal_metadata(manifest: Manifest, model: Model) -> dict[str, Any]:
    fields = []
    for column in model.columns:
        if column.name in MANAGED or column.system:
            continue
        field = {
            "key": column.name,
            "label": column_label(column),
            "type": form_type(column),
            "required": column.required,
            "nullable": not column.required,
            "ref": ref(manifest, column, model),
        }
        if column.has_default and column.default is not None:
            field["defaultValue"] = _default_value(column)
        if column.size and get_type(column.type).text_like:
            field["validation"] = {"max": column.size}
        fields.append(_compact(field))
    derived = {
        "title": model.label,
        "fields": fields,
        "customActions": [action_def(a) for a in model_actions(manifest, model)],
    }
    result = _compact(_overlay(derived, model.modal_meta))
    result.setdefault("title", model.label)
    result.setdefault("fields", [])
    return result


def _default_value(column: Column) -> object:
    col_type = get_type(column.type)
    try:
        return col_type.to_json(col_type.literal(column.default))
    except ValueError:  # the installer validated it; a literal the type cannot read stays as declared
        return column.default
