"""`json` (jsonb on PostgreSQL): objects, arrays or scalars."""

from __future__ import annotations

import copy
import json
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import models
from rest_framework import serializers

from .base import ColumnType
from .registry import register

if TYPE_CHECKING:
    from metacore.manifest.model import Column


@register
class JSONType(ColumnType):
    name = "json"
    aliases = ("jsonb", "object", "array")
    field_class = models.JSONField
    serializer_field_class = serializers.JSONField
    sortable = False
    lookups = ("isnull", "has_key")  # `contains` is not portable (no SQLite support)
    db_default_literal_ok = False  # Django needs an expression for a JSON db_default
    openapi_schema = {}  # any JSON value
    example = {"key": "value"}
    django_field_types = ("JSONField",)
    form_type = "textarea"

    def serializer_kwargs(self, column: Column) -> dict[str, Any]:
        return {"validators": [_no_nul]}

    def parse(self, raw: str) -> Any:
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not valid JSON") from None

    def from_csv(self, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("is not valid JSON") from None

    def literal(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value  # a bare string default is a JSON string
        return value

    def default_kwargs(self, column: Column, *, db_default: bool) -> dict[str, Any]:
        kwargs = super().default_kwargs(column, db_default=db_default)
        if isinstance(kwargs.get("default"), (dict, list)):
            # a callable, so rows never share (and mutate) one default object
            kwargs["default"] = partial(copy.deepcopy, kwargs["default"])
        return kwargs

    def describe(self, column: Column | None = None) -> str:
        return "jsonb"


def _no_nul(value: Any) -> None:
    """PostgreSQL cannot store U+0000 in jsonb (SQLite can): refused on both, alike."""
    if "\\u0000" in json.dumps(value):
        raise serializers.ValidationError("must not contain NUL characters")
