"""The column type contract: one small class per manifest column type.

A type knows everything the other subsystems ask about a column of that type: its Django
field (schema builder, runtime models), how to read a query-string value (store filters),
how to write a value into a JSON response, its OpenAPI schema, how to describe it in a
plan, and which filter lookups make sense for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.db import models

if TYPE_CHECKING:
    from metacore.manifest.model import Column

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


class ColumnType:
    """Base class; subclasses set the class attributes and override what differs."""

    name: ClassVar[str]  # canonical name used in Manifest columns
    aliases: ClassVar[tuple[str, ...]] = ()  # other spellings manifests use (lowercase)
    field_class: ClassVar[type[models.Field]]
    text_like: ClassVar[bool] = False  # searchable by default, allows text lookups
    sortable: ClassVar[bool] = True
    lookups: ClassVar[tuple[str, ...]] = ORDERING_LOOKUPS
    openapi_schema: ClassVar[dict[str, Any]] = {}

    # -- Django ---------------------------------------------------------------------------
    def field_kwargs(self, column: Column) -> dict[str, Any]:
        """Type-specific keyword arguments (max_length, max_digits...)."""
        return {}

    def django_field(self, column: Column, *, db_default: bool = True) -> models.Field:
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
