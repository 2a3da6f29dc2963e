"""`bool`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import models
from rest_framework import serializers

from .base import EQUALITY_LOOKUPS, ColumnType
from .registry import register

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from metacore.manifest.model import Column

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})


def _sqlite_bool_json(value: Any) -> Any:
    """As Django's SQLite converter: sqlite3 reads a `bool` column as True/False, an integer
    column (a host's table) as 0/1."""
    return bool(value) if value in (0, 1) else value


@register
class BoolType(ColumnType):
    name = "bool"
    aliases = ("boolean",)
    field_class = models.BooleanField
    serializer_field_class = serializers.BooleanField
    lookups = EQUALITY_LOOKUPS
    openapi_schema = {"type": "boolean"}
    example = True
    django_field_types = ("BooleanField",)
    ui_type = form_type = filter_type = cell_style = "boolean"

    def parse(self, raw: str) -> bool:
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"{raw!r} is not a boolean (use true or false)")

    def check_literal(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"{value!r} is not a boolean")

    def json_from_db(self, connection: BaseDatabaseWrapper) -> Callable[[Any], Any] | None:
        if connection.vendor != "sqlite" or type(self).to_json is not BoolType.to_json:
            return None
        return _sqlite_bool_json

    def describe(self, column: Column | None = None) -> str:
        return "boolean"
