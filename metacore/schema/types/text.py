"""Text types: `string` (varchar, bounded) and `text` (unbounded)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.functions import Length
from rest_framework import serializers

from .base import DESTRUCTIVE, SAFE, TEXT_LOOKUPS, Alteration, ColumnType
from .registry import register

if TYPE_CHECKING:
    from metacore.manifest.model import Column

DEFAULT_STRING_SIZE = 255


class _Text(ColumnType):
    text_like = True
    lookups = TEXT_LOOKUPS + ("gt", "gte", "lt", "lte")
    serializer_field_class = serializers.CharField

    def serializer_kwargs(self, column: Column) -> dict[str, Any]:
        return {"allow_blank": True, "trim_whitespace": False}

    def parse(self, raw: str) -> str:
        return str(raw)

    def check_literal(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a valid {self.name}")
        return str(value)  # `"default": 0` on a text column means the text "0"


@register
class StringType(_Text):
    name = "string"
    aliases = ("varchar", "char", "character varying", "character")
    field_class = models.CharField
    openapi_schema = {"type": "string"}
    example = "text"
    widens_to = frozenset({"text"})
    django_field_types = ("CharField", "SlugField", "EmailField", "URLField", "GenericIPAddressField")

    parameters = ("size",)
    MAX_SIZE = 10_485_760  # PostgreSQL's varchar limit

    def size(self, column: Column) -> int:
        return column.size or DEFAULT_STRING_SIZE

    def resolve_parameters(self, declared: dict[str, int | None]) -> dict[str, int | None]:
        size = declared.get("size") or DEFAULT_STRING_SIZE
        if not 1 <= size <= self.MAX_SIZE:
            raise ValueError(f"size {size} is out of range (1..{self.MAX_SIZE})")
        return {"size": size}

    def field_kwargs(self, column: Column) -> dict[str, Any]:
        return {"max_length": self.size(column)}

    def serializer_kwargs(self, column: Column) -> dict[str, Any]:
        return {**super().serializer_kwargs(column), "max_length": self.size(column)}

    def parameters_of(self, field: models.Field[Any, Any]) -> dict[str, int | None]:
        return {"size": field.max_length}

    def alteration(self, old_type: ColumnType, old: Column, new: Column) -> Alteration | None:
        """A smaller size, or text becoming a string, loses what does not fit: destructive,
        and the rows longer than the new size block it."""
        limit = self.size(new)
        if old_type is self:
            if self.size(old) == limit:
                return None
            words = f"size {self.size(old)} -> {limit}"
            if limit > self.size(old):
                return Alteration(words, SAFE)
        elif old_type.text_like:
            words = f"type {old_type.describe(old)} -> {self.describe(new)}"
        else:
            return super().alteration(old_type, old, new)
        return Alteration(
            words,
            DESTRUCTIVE,
            problem=f"longer than {limit}",
            offending=lambda rows, field: rows.annotate(_len=Length(field)).filter(_len__gt=limit),
        )

    def openapi(self, column: Column | None = None) -> dict[str, Any]:
        schema = super().openapi(column)
        schema["maxLength"] = self.size(column) if column is not None else DEFAULT_STRING_SIZE
        return schema

    def describe(self, column: Column | None = None) -> str:
        return f"varchar({self.size(column) if column is not None else DEFAULT_STRING_SIZE})"


@register
class TextType(_Text):
    name = "text"
    aliases = ("longtext", "citext")
    field_class = models.TextField
    openapi_schema = {"type": "string"}
    example = "Some longer text"
    django_field_types = ("TextField",)
