"""The one typed Manifest every subsystem reads.

Both upstream formats (flat `key`/`model_definitions` and v3 `apiVersion: asteby.com/v3`)
are parsed into these classes by `metacore.manifest.parse`; nothing outside `manifest/`
looks at raw manifest JSON except through `Manifest.raw` (kept for `/manifests`).

Column types are canonical names from `metacore.schema.types` (string, text, uuid, int,
bigint, float, decimal, bool, date, datetime, json); aliases such as `timestamptz`,
`jsonb`, `integer`, `numeric` are resolved by the parser.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SYSTEM_COLUMNS = ("id", "organization_id", "created_at", "updated_at", "deleted_at")
DefaultFn = Literal["now", "uuid"]
OnDelete = Literal["cascade", "set_null", "restrict", "no_action"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Reference(_Frozen):
    """A foreign key to another model of the same addon (by table name), always to its `id`."""

    table: str
    column: str = "id"
    on_delete: OnDelete = "restrict"
    physical: bool = True  # False: v3 `policy: logical`, checked by the store, no SQL constraint


class Column(_Frozen):
    name: str
    type: str  # canonical type name, see metacore.schema.types
    label: str | None = None
    size: int | None = None  # string max length (default 255 for `string`)
    precision: int | None = None  # decimal digits
    scale: int | None = None  # decimal places
    required: bool = False  # NOT NULL
    unique: bool = False
    index: bool = False
    primary_key: bool = False
    default: Any = None  # a literal value (already unquoted), used when has_default
    has_default: bool = False
    default_fn: DefaultFn | None = None  # `now()` / `gen_random_uuid()` as meanings
    references: Reference | None = None
    searchable: bool = False
    renamed_from: str | None = None  # upgrade hint
    system: bool = False  # implicit managed column (id, organization_id, timestamps, deleted_at)


class Index(_Frozen):
    name: str | None = None
    columns: tuple[str, ...]
    unique: bool = False


class Model(_Frozen):
    key: str  # model key as declared ("Tickets"); the API also accepts the table name
    table: str  # logical table name inside the addon ("tickets")
    label: str
    columns: tuple[Column, ...]  # every physical column, system ones included, in order
    indexes: tuple[Index, ...] = ()  # multi-column indexes (single-column ones are on Column)
    org_scoped: bool = False
    soft_delete: bool = False
    renamed_from: str | None = None  # upgrade hint: previous table name
    table_meta: dict[str, Any] | None = None  # manifest's `table` block, for /metadata/table
    modal_meta: dict[str, Any] | None = None  # manifest's `modal` block, for /metadata/modal

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def user_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.system)


class Capability(_Frozen):
    kind: str  # db:read, db:write, http:fetch, event:emit, event:subscribe, event:notify
    target: str
    reason: str = ""


class Permission(_Frozen):
    key: str  # e.g. "tickets.approve"
    label: str = ""
    description: str = ""


class ActionField(_Frozen):
    model_config = ConfigDict(frozen=True, extra="allow")
    key: str
    type: str = "text"
    label: str = ""
    required: bool = False


class Action(_Frozen):
    model_config = ConfigDict(frozen=True, extra="allow")
    key: str
    model: str  # model key or table the action targets
    label: str = ""
    handler_type: str = "wasm"  # wasm | webhook
    function: str | None = None  # wasm export name
    url: str | None = None  # webhook target
    run_in_tx: bool = True
    fields: tuple[ActionField, ...] = ()
    modal: str | None = None


class Backend(_Frozen):
    runtime: Literal["wasm", "webhook", "none"] = "wasm"
    entry: str | None = None  # path of the .wasm inside the bundle
    url: str | None = None  # webhook base URL (flat `backend.url`)
    exports: tuple[str, ...] = ()
    memory_limit_mb: int = 64
    timeout_ms: int = 10_000


class Manifest(_Frozen):
    format: Literal["flat", "v3"]
    key: str
    name: str
    version: str
    description: str = ""
    kernel: str | None = None  # compatible kernel version range, e.g. ">=3.0.0 <4.0.0"
    tenant_isolation: str = "shared"
    models: tuple[Model, ...] = ()
    capabilities: tuple[Capability, ...] = ()
    permissions: tuple[Permission, ...] = ()
    settings: tuple[dict[str, Any], ...] = ()
    navigation: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    actions: tuple[Action, ...] = ()
    hooks: dict[str, str] = Field(default_factory=dict)  # lifecycle hook -> export / url
    events: tuple[str, ...] = ()
    backend: Backend | None = None
    frontend: dict[str, Any] | None = None
    raw: dict[str, Any] = Field(default_factory=dict)  # the manifest as received
    warnings: tuple[str, ...] = ()  # what upstream accepts that the author should still fix

    def model(self, key_or_table: str) -> Model | None:
        """Find a model by key or table name, case-insensitively."""
        wanted = key_or_table.lower()
        return next((m for m in self.models if wanted in (m.key.lower(), m.table.lower())), None)
