"""Text types: `string` (varchar, bounded) and `text` (unbounded)."""

from __future__ import annotations

from typing import Any

from django.db import models

from .base import TEXT_LOOKUPS, ColumnType
from .registry import register

DEFAULT_STRING_SIZE = 255


class _Text(ColumnType):
    text_like = True
    lookups = TEXT_LOOKUPS + ("gt", "gte", "lt", "lte")

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

    def size(self, column) -> int:
        return column.size or DEFAULT_STRING_SIZE

    def field_kwargs(self, column) -> dict[str, Any]:
        return {"max_length": self.size(column)}

    def openapi(self, column=None) -> dict[str, Any]:
        schema = super().openapi(column)
        schema["maxLength"] = self.size(column) if column is not None else DEFAULT_STRING_SIZE
        return schema

    def describe(self, column=None) -> str:
        return f"varchar({self.size(column) if column is not None else DEFAULT_STRING_SIZE})"


@register
class TextType(_Text):
    name = "text"
    aliases = ("longtext", "citext")
    field_class = models.TextField
    openapi_schema = {"type": "string"}
