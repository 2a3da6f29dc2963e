"""The column type contract: one small class per manifest column type.

A type knows everything the other subsystems ask about a column of that type (modelled on
Baserow's FieldType): its manifest parameters (`varchar(80)`), its Django field (schema
builder, runtime models) and the Django fields a host model serves as it, the DRF field that
validates a written value (store), how to read a query-string value (store filters) or a CSV
cell (import), how to write a value into a JSON response, its OpenAPI schema and example,
its table/form/filter types in UI metadata, which `default_fn` meanings apply, how to
describe it in a plan, which filter lookups make sense for it, and what changing a column to
it means for an upgrade. docs/column-types.md is the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models
from rest_framework import serializers

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import QuerySet

    from metacore.manifest.model import Column

#: How safe an upgrade step is: no value can be lost / drops or narrows data (refused unless
#: destructive steps are allowed) / safe only if the existing rows allow it (checked first).
SAFE, DESTRUCTIVE, NEEDS_CHECK = "safe", "destructive", "needs-data-check"

#: Lookups every scalar type supports (Django lookup names).
EQUALITY_LOOKUPS = ("exact", "in", "isnull")
ORDERING_LOOKUPS = EQUALITY_LOOKUPS + ("gt", "gte", "lt", "lte")
TEXT_LOOKUPS = EQUALITY_LOOKUPS + (
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
)


@dataclass(frozen=True)
class Alteration:
    """What changing a column's type or its parameters means for an upgrade: words for the
    plan, how safe it is and, when the rows decide, which existing rows would not fit."""

    words: str
    safety: str = SAFE
    problem: str | None = None  # said of each offending row: "longer than 80"
    offending: Callable[[QuerySet[Any], str], QuerySet[Any]] | None = None  # (rows, old field name) -> rows


class ColumnType:
    """Base class; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # canonical name used in Manifest columns
    aliases: ClassVar[tuple[str, ...]] = ()  # other spellings manifests use (lowercase)
    field_class: ClassVar[type[models.Field[Any, Any]]]
    serializer_field_class: ClassVar[type[serializers.Field[Any, Any, Any, Any]]]
    text_like: ClassVar[bool] = False  # searchable by default, allows text lookups
    sortable: ClassVar[bool] = True
    lookups: ClassVar[tuple[str, ...]] = ORDERING_LOOKUPS
    openapi_schema: ClassVar[dict[str, Any]] = {}
    example: ClassVar[Any] = "text"  # a value of the type for OpenAPI examples
    default_fns: ClassVar[frozenset[str]] = frozenset()  # `default_fn` meanings that apply
    # Column parameters the type takes, in the order a spelling like `numeric(10,2)` gives them.
    parameters: ClassVar[tuple[str, ...]] = ()
    # Django fields (`get_internal_type()` names) a host model serves as columns of this type.
    django_field_types: ClassVar[tuple[str, ...]] = ()
    widens_to: ClassVar[frozenset[str]] = frozenset()  # types every value converts to unchanged
    # UI metadata (upstream ColumnUIType / FormFieldType / filter type / cell style)
    ui_type: ClassVar[str] = "text"
    form_type: ClassVar[str] = "text"
    filter_type: ClassVar[str] = "text"
    cell_style: ClassVar[str | None] = None

    # -- Django ---------------------------------------------------------------------------
    def field_kwargs(self, column: Column) -> dict[str, Any]:
        """Type-specific keyword arguments (max_length, max_digits...)."""
        return {}

    def django_field(self, column: Column, *, db_default: bool = True) -> models.Field[Any, Any]:
        """A fresh, unbound Django field for `column`.

        Nullability, uniqueness and indexes come from the column. A literal default becomes
        the field default (and, with `db_default`, the column's SQL DEFAULT, as upstream
        creates it); `default_fn` "now"/"uuid" become `timezone.now`/`uuid.uuid4`.
        References stay plain indexed columns here: the schema builder adds the constraint.
        """
        kwargs = self.field_kwargs(column)
        if column.primary_key:
            kwargs.update(primary_key=True, editable=False)
        else:
            kwargs.update(null=not column.required, blank=not column.required)
            if column.unique:
                kwargs["unique"] = True
            elif column.index or column.references is not None:
                kwargs["db_index"] = True
        kwargs.update(self.default_kwargs(column, db_default=db_default))
        if column.label:
            kwargs["verbose_name"] = column.label
        return self.field_class(**kwargs)

    def default_kwargs(self, column: Column, *, db_default: bool) -> dict[str, Any]:
        if column.default_fn is not None:
            return self.default_fn_kwargs(column.default_fn, db_default=db_default)
        if not column.has_default or column.default is None:
            return {}
        value = self.literal(column.default)
        kwargs: dict[str, Any] = {"default": value}
        if db_default and self.db_default_literal_ok:
            kwargs["db_default"] = value
        return kwargs

    db_default_literal_ok: ClassVar[bool] = True

    def default_fn_kwargs(self, default_fn: str, *, db_default: bool) -> dict[str, Any]:
        raise ValueError(f'default {default_fn}() does not apply to type "{self.name}"')

    # -- manifest parameters --------------------------------------------------------------
    def spelled_parameters(self, numbers: list[int]) -> dict[str, int]:
        """`varchar(80)` -> `{"size": 80}`: the numbers of a parenthesised spelling by name;
        ValueError if the type takes fewer (or none)."""
        if not self.parameters or len(numbers) > len(self.parameters):
            raise ValueError(f'type "{self.name}" takes {len(self.parameters) or "no"} parameters')
        return dict(zip(self.parameters, numbers, strict=False))

    def resolve_parameters(self, declared: dict[str, int | None]) -> dict[str, int | None]:
        """The column's parameters (`size`, `precision`, `scale`) with the type's defaults
        applied; the ones it does not take are left out. ValueError names a broken rule."""
        return {}

    def parameters_of(self, field: models.Field[Any, Any]) -> dict[str, int | None]:
        """The parameters of a host model's Django field served as a column of this type."""
        return {}

    # -- writes ---------------------------------------------------------------------------
    def serializer_kwargs(self, column: Column) -> dict[str, Any]:
        """Type-specific keyword arguments of the DRF field (max_length, min_value...)."""
        return {}

    def serializer_field(self, column: Column, **kwargs: Any) -> serializers.Field[Any, Any, Any, Any]:
        """The DRF field validating a written value; the store passes `required`/`allow_null`."""
        return self.serializer_field_class(**self.serializer_kwargs(column), **kwargs)

    # -- upgrades -------------------------------------------------------------------------
    def alteration(self, old_type: ColumnType, old: Column, new: Column) -> Alteration | None:
        """What turning `old` (of `old_type`) into `new` (of this type) means, or None when
        nothing about the type changes. A change of type is safe when the old type widens to
        this one, destructive otherwise; types with parameters (size, precision) or data
        rules override this."""
        if old_type is self:
            return None
        words = f"type {old_type.describe(old)} -> {self.describe(new)}"
        return Alteration(words, SAFE if self.name in old_type.widens_to else DESTRUCTIVE)

    # -- values ---------------------------------------------------------------------------
    def parse(self, raw: str) -> Any:
        """A query-string value as a Python value; ValueError with a readable message."""
        raise NotImplementedError

    def literal(self, value: Any) -> Any:
        """A manifest default (any JSON value) as a Python value of this type."""
        if isinstance(value, str):
            return self.parse(value)
        return self.check_literal(value)

    def check_literal(self, value: Any) -> Any:
        raise ValueError(f"{value!r} is not a valid {self.name}")

    def to_json(self, value: Any) -> Any:
        """A stored value as a JSON-serialisable value for responses."""
        return value

    def json_from_db(self, connection: BaseDatabaseWrapper) -> Callable[[Any], Any] | None:
        """What `connection`'s driver returns for this type, straight to `to_json`'s result,
        without the field's converters and the Python value between them (a list page makes
        hundreds of those); None: convert as the ORM does, then `to_json`. It must take every
        value the ORM's converter takes (a host model's table may declare its columns
        otherwise than Django would) and answer what `to_json` would; the store uses it only
        for fields without `from_db_value`. A subclass overriding `to_json` gets None here."""
        return None

    def from_csv(self, text: str) -> Any:
        """A non-empty CSV cell as the value a JSON body would carry (validated after, like
        one): the text itself, unless the type's JSON values are not strings."""
        return text

    # -- descriptions ---------------------------------------------------------------------
    def openapi(self, column: Column | None = None) -> dict[str, Any]:
        schema = dict(self.openapi_schema)
        if column is not None and not column.required and not column.primary_key:
            schema["nullable"] = True
        return schema

    def describe(self, column: Column | None = None) -> str:
        """SQL-ish words for plans and `metacore_plan` output."""
        return self.name

    def __repr__(self) -> str:
        return f"<ColumnType {self.name}>"
