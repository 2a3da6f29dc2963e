"""Column and model normalisation shared by both manifest formats.

Each reader turns its JSON into drafts (plain values plus the JSON path they came from);
`build_models` then applies the rules both formats share: column types and aliases,
defaults as meanings, managed system columns, folded indexes and references, identifiers,
duplicates and dangling references. It reports problems instead of raising.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metacore.schema.naming import schema_name
from metacore.schema.types import UnknownColumnType, canonical_name, get_type

from .errors import Problems
from .identifiers import (
    MODEL_KEY_RE,
    column_name_problems,
    sql_name_problems,
    table_name_problems,
)
from .model import Column, DefaultFn, Index, Model, OnDelete, Reference

if TYPE_CHECKING:
    from .reading import Reader

ON_DELETE: tuple[OnDelete, ...] = ("cascade", "set_null", "restrict", "no_action")
# SQL default expressions that mean something rather than being literal text.
DEFAULT_FUNCTIONS: dict[str, DefaultFn] = {
    "now()": "now",
    "current_timestamp": "now",
    "current_timestamp()": "now",
    "gen_random_uuid()": "uuid",
    "uuid_generate_v4()": "uuid",
}
_QUOTED_DEFAULT = re.compile(r"'((?:[^']|'')*)'(?:::[a-z][a-z0-9_ ]*(?:\(\d+(?:,\s*\d+)?\))?)?", re.I)
_FUNCTION_CALL = re.compile(r"[a-z_][a-z0-9_.]*\s*\(.*\)", re.I | re.S)
_PARAMETERISED_TYPE = re.compile(r"\s*([a-z ]+?)\s*\(\s*(\d{1,4})\s*(?:,\s*(\d{1,4})\s*)?\)\s*", re.I)

SYSTEM_TYPES = {
    "id": "uuid",
    "organization_id": "uuid",
    "created_at": "datetime",
    "updated_at": "datetime",
    "deleted_at": "datetime",
}


def system_columns(org_scoped: bool, soft_delete: bool) -> tuple[list[Column], list[Column]]:
    """The managed columns, as upstream creates them: (leading, trailing)."""
    leading = [
        Column(name="id", type="uuid", primary_key=True, required=True, default_fn="uuid", system=True)
    ]
    if org_scoped:
        leading.append(Column(name="organization_id", type="uuid", required=True, index=True, system=True))
    trailing = [
        Column(name="created_at", type="datetime", required=True, default_fn="now", system=True),
        Column(name="updated_at", type="datetime", required=True, default_fn="now", system=True),
    ]
    if soft_delete:
        trailing.append(Column(name="deleted_at", type="datetime", index=True, system=True))
    return leading, trailing


@dataclass
class RefDraft:
    path: str
    target: str  # model key or table, optionally qualified (`tickets.Ticket`, `addon_tickets.tickets`)
    column: str = "id"
    on_delete: str = "restrict"
    physical: bool = True


@dataclass
class ColumnDraft:
    path: str
    name: str
    type: str  # as declared; resolved by build_models
    size: int | None = None
    precision: int | None = None
    scale: int | None = None
    required: bool = False
    unique: bool = False
    index: bool = False
    primary_key: bool = False
    default: Any = None
    label: str | None = None
    searchable: bool | None = None
    renamed_from: str | None = None
    reference: RefDraft | None = None


@dataclass
class IndexDraft:
    path: str
    name: str | None
    columns: list[str]
    unique: bool = False
    partial: bool = False  # v3 `where`: only a non-unique partial index can widen to a full one


@dataclass
class ModelDraft:
    path: str
    key: str
    table: str
    label: str
    columns: list[ColumnDraft] = field(default_factory=list)
    indexes: list[IndexDraft] = field(default_factory=list)
    org_scoped: bool = False
    soft_delete: bool = False
    renamed_from: str | None = None
    table_meta: dict[str, Any] | None = None
    modal_meta: dict[str, Any] | None = None


def resolve_type(declared: str) -> tuple[str, dict[str, int]]:
    """`numeric(10,2)` -> ("decimal", {precision: 10, scale: 2}); `varchar(80)` -> ("string",
    {size: 80}); aliases -> canonical names. Raises UnknownColumnType."""
    match = _PARAMETERISED_TYPE.fullmatch(declared)
    if not match:
        return canonical_name(declared), {}
    ctype = get_type(match.group(1))
    numbers = [int(n) for n in match.group(2, 3) if n is not None]
    try:
        return ctype.name, ctype.spelled_parameters(numbers)
    except ValueError:
        raise UnknownColumnType(declared) from None


def resolve_default(raw: Any, type_name: str) -> tuple[bool, Any, DefaultFn | None]:
    """(has_default, JSON-native literal, default_fn) for a declared default.

    Strings are literal values, except: `now()`/`current_timestamp` and
    `gen_random_uuid()`/`uuid_generate_v4()` (meanings, not SQL), `null` (no default), and
    SQL-quoted literals such as `'draft'` or `'0'::text` (unquoted). Raises ValueError.
    """
    ctype = get_type(type_name)
    if raw is None:
        return False, None, None
    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        lowered = text.lower()
        if text == "" or lowered == "null":
            return False, None, None
        if lowered in DEFAULT_FUNCTIONS:
            meaning = DEFAULT_FUNCTIONS[lowered]
            if meaning not in ctype.default_fns:
                raise ValueError(f"default {text} does not apply to a {type_name} column")
            return False, None, meaning
        quoted = _QUOTED_DEFAULT.fullmatch(text)
        if quoted:
            value = quoted.group(1).replace("''", "'")
        elif _FUNCTION_CALL.fullmatch(text):
            raise ValueError(
                f'unsupported default expression "{text}" (use a literal value, now() or gen_random_uuid())'
            )
    return True, ctype.to_json(ctype.literal(value)), None


def build_models(addon_key: str, drafts: list[ModelDraft], problems: Problems) -> tuple[Model, ...]:
    _check_model_names(addon_key, drafts, problems)
    return tuple(_build_model(addon_key, draft, drafts, problems) for draft in drafts)


def _check_model_names(addon_key: str, drafts: list[ModelDraft], problems: Problems) -> None:
    owners: dict[str, str] = {}  # lowercase key/table -> path of the model that uses it
    for draft in drafts:
        for rule in table_name_problems(addon_key, draft.table):
            problems.add(draft.path + ".table", rule)
        if not MODEL_KEY_RE.fullmatch(draft.key) or len(draft.key) > 63:
            problems.add(
                draft.path + ".key",
                f'invalid model key "{draft.key}": letters, digits and "_", '
                "starting with a letter, at most 63 characters",
            )
        for name in {draft.key.lower(), draft.table.lower()}:
            if name in owners:
                problems.add(
                    draft.path,
                    f'"{name}" names two models (also {owners[name]}); model keys and tables must be unique',
                )
            else:
                owners[name] = draft.path
        if draft.renamed_from is not None:
            for rule in sql_name_problems("table", draft.renamed_from):
                problems.add(draft.path + ".renamed_from", rule)


def _build_model(
    addon_key: str, draft: ModelDraft, all_drafts: list[ModelDraft], problems: Problems
) -> Model:
    org_scoped, soft_delete = draft.org_scoped, draft.soft_delete
    user_columns: list[Column] = []
    seen: dict[str, str] = {}
    for col in draft.columns:
        if col.name in seen:
            problems.add(col.path + ".name", f'duplicate column "{col.name}" (also {seen[col.name]})')
            continue
        seen[col.name] = col.path
        built = _build_column(addon_key, col, all_drafts, problems)
        if col.name in SYSTEM_TYPES:
            # A managed column declared explicitly documents the table; its presence sets the flag.
            if built is not None and built.type != SYSTEM_TYPES[col.name]:
                problems.add(
                    col.path + ".type",
                    f'managed column "{col.name}" must be {SYSTEM_TYPES[col.name]}, not {built.type}',
                )
            org_scoped |= col.name == "organization_id"
            soft_delete |= col.name == "deleted_at"
            continue
        if col.primary_key:
            problems.add(col.path + ".primary_key", f'only "id" can be the primary key (got "{col.name}")')
        if built is not None:
            user_columns.append(built)

    leading, trailing = system_columns(org_scoped, soft_delete)
    columns = {c.name: c for c in [*leading, *user_columns, *trailing]}
    indexes = _fold_indexes(draft, columns, set(seen) - set(columns), problems)
    return Model(
        key=draft.key,
        table=draft.table,
        label=draft.label or draft.key,
        columns=tuple(columns.values()),
        indexes=tuple(indexes),
        org_scoped=org_scoped,
        soft_delete=soft_delete,
        renamed_from=draft.renamed_from,
        table_meta=draft.table_meta,
        modal_meta=draft.modal_meta,
    )


def read_column(
    r: Reader, path: str, col: dict[str, Any], *, required_key: str, reference: RefDraft | None = None
) -> ColumnDraft:
    """A column entry as both formats spell it; they differ only in the NOT NULL key
    (`required` flat, `not_null` v3) and in where references come from."""
    return ColumnDraft(
        path=path,
        name=r.string(col, "name", path, required=True) or "",
        type=r.string(col, "type", path, required=True) or "",
        size=r.integer(col, "size", path, minimum=0),
        precision=r.integer(col, "precision", path, minimum=1),
        scale=r.integer(col, "scale", path, minimum=0),
        required=r.boolean(col, required_key, path),
        unique=r.boolean(col, "unique", path),
        index=r.boolean(col, "index", path),
        primary_key=r.boolean(col, "primary_key", path),
        default=col.get("default"),
        label=r.string(col, "label", path),
        searchable=col.get("searchable") if isinstance(col.get("searchable"), bool) else None,
        renamed_from=r.string(col, "renamed_from", path),
        reference=reference,
    )


def _build_column(
    addon_key: str, col: ColumnDraft, all_drafts: list[ModelDraft], problems: Problems
) -> Column | None:
    name_rules = [] if col.name in SYSTEM_TYPES else column_name_problems(col.name)
    for rule in name_rules:
        problems.add(col.path + ".name", rule)
    ok = not name_rules
    if col.renamed_from is not None:
        for rule in column_name_problems(col.renamed_from):
            problems.add(col.path + ".renamed_from", rule)
            ok = False
    try:
        type_name, params = resolve_type(col.type)
    except UnknownColumnType as exc:
        problems.add(col.path + ".type", str(exc))
        return None
    ctype = get_type(type_name)
    try:
        resolved = ctype.resolve_parameters(
            {"size": col.size, "precision": col.precision, "scale": col.scale, **params}
        )
    except ValueError as exc:
        problems.add(f"{col.path}.{ctype.parameters[0]}", str(exc))
        resolved, ok = {}, False
    size, precision, scale = (resolved.get(name) for name in ("size", "precision", "scale"))
    try:
        has_default, default, default_fn = resolve_default(col.default, type_name)
    except ValueError as exc:
        problems.add(col.path + ".default", str(exc))
        has_default, default, default_fn, ok = False, None, None, False
    reference = _resolve_reference(addon_key, col, type_name, all_drafts, problems)
    if col.reference is not None and reference is None:
        ok = False
    if not ok:
        return None
    searchable = get_type(type_name).text_like if col.searchable is None else col.searchable
    return Column(
        name=col.name,
        type=type_name,
        label=col.label,
        size=size,
        precision=precision,
        scale=scale,
        required=col.required,
        unique=col.unique,
        index=col.index and not col.unique,
        default=default,
        has_default=has_default,
        default_fn=default_fn,
        references=reference,
        searchable=searchable,
        renamed_from=col.renamed_from,
    )


def _resolve_reference(
    addon_key: str, col: ColumnDraft, type_name: str, all_drafts: list[ModelDraft], problems: Problems
) -> Reference | None:
    ref = col.reference
    if ref is None:
        return None
    name = ref.target
    for prefix in (f"{schema_name(addon_key)}.", f"{addon_key}."):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
            break
    target = next((d for d in all_drafts if name.lower() in (d.key.lower(), d.table.lower())), None)
    if target is None:
        problems.add(
            ref.path,
            f'references unknown model "{ref.target}" (a reference must name a '
            f'model of addon "{addon_key}" by key or table)',
        )
        return None
    if ref.column != "id":
        problems.add(
            ref.path, f'references {target.table}.{ref.column}: only references to "id" are supported'
        )
        return None
    if ref.on_delete not in ON_DELETE:
        problems.add(ref.path, f'unknown on_delete "{ref.on_delete}" (use one of {", ".join(ON_DELETE)})')
        return None
    if type_name != "uuid":
        problems.add(
            col.path + ".type",
            f'column "{col.name}" references {target.table}.id, so it must be uuid (got {type_name})',
        )
        return None
    if ref.on_delete == "set_null" and col.required:
        problems.add(ref.path, f'on_delete set_null needs a nullable column, but "{col.name}" is required')
        return None
    return Reference(table=target.table, column="id", on_delete=ref.on_delete, physical=ref.physical)


def _fold_indexes(
    draft: ModelDraft, columns: dict[str, Column], broken: set[str], problems: Problems
) -> list[Index]:
    """Single-column indexes become the column's index/unique flag; the rest stay indexes.
    `broken` columns were declared but already reported, so they are not reported again."""
    indexes: list[Index] = []
    names: set[str] = set()
    for idx in draft.indexes:
        missing = [c for c in idx.columns if c not in columns]
        if missing:
            if not broken.issuperset(missing):
                unknown = next(c for c in missing if c not in broken)
                problems.add(idx.path + ".columns", f'unknown column "{unknown}" in model "{draft.key}"')
            continue
        if idx.partial and idx.unique:
            problems.add(idx.path + ".where", "partial unique indexes are not supported")
            continue
        if len(set(idx.columns)) != len(idx.columns):
            problems.add(idx.path + ".columns", "a column appears twice")
            continue
        if idx.name is not None:
            for rule in sql_name_problems("index", idx.name):
                problems.add(idx.path + ".name", rule)
            if idx.name in names:
                problems.add(idx.path + ".name", f'duplicate index name "{idx.name}"')
            names.add(idx.name)
        if len(idx.columns) == 1:
            column = columns[idx.columns[0]]
            if column.primary_key:
                continue
            flags = {"unique": True, "index": False} if idx.unique else {"index": not column.unique}
            columns[column.name] = column.model_copy(update=flags)
        else:
            indexes.append(Index(name=idx.name, columns=tuple(idx.columns), unique=idx.unique))
    return indexes
