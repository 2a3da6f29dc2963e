"""`uuid`: row ids, organization ids and references to other rows."""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import models
from rest_framework import serializers

from .base import EQUALITY_LOOKUPS, ColumnType
from .registry import register

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

#: How Django stores a UUIDField on SQLite (`char(32)`, `UUID.hex`).
_SQLITE_HEX = re.compile("[0-9a-f]{32}")


def _sqlite_uuid_json(value: Any) -> Any:
    """A stored `UUID.hex` as `str(UUID)`, by slicing; anything else the way the ORM reads it."""
    if value.__class__ is str and _SQLITE_HEX.fullmatch(value):
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return None if value is None else str(uuidlib.UUID(value))


@register
class UUIDType(ColumnType):
    name = "uuid"
    field_class = models.UUIDField
    serializer_field_class = serializers.UUIDField
    lookups = EQUALITY_LOOKUPS
    openapi_schema = {"type": "string", "format": "uuid"}
    example = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    django_field_types = ("UUIDField",)
    default_fns = frozenset({"uuid"})
    widens_to = frozenset({"text"})

    def parse(self, raw: str) -> uuidlib.UUID:
        try:
            return uuidlib.UUID(str(raw).strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid UUID") from None

    def to_json(self, value: Any) -> Any:
        return None if value is None else str(value)

    def json_from_db(self, connection: BaseDatabaseWrapper) -> Callable[[Any], Any] | None:
        if connection.vendor != "sqlite" or type(self).to_json is not UUIDType.to_json:
            return None
        return _sqlite_uuid_json

    def default_fn_kwargs(self, default_fn: str, *, db_default: bool) -> dict[str, Any]:
        if default_fn != "uuid":
            return super().default_fn_kwargs(default_fn, db_default=db_default)
        return {"default": uuidlib.uuid4}
