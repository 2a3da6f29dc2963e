"""Numbers: `int`, `bigint`, `float`, `decimal`.

Decimals are answered as strings (`"12.5000"`): upstream's Go kernel answers JSON numbers,
which lose precision past 15-17 significant digits; a string keeps every digit and every
JSON client can read it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import models
from rest_framework import serializers

from .base import DESTRUCTIVE, SAFE, Alteration, ColumnType
from .registry import register

if TYPE_CHECKING:
    from metacore.manifest.model import Column

_INTEGER = re.compile(r"[+-]?[0-9]+")
DEFAULT_PRECISION = 18
DEFAULT_SCALE = 4


class _Number(ColumnType):
    ui_type = form_type = "number"
    filter_type = "number_range"


class _Integer(_Number):
    bounds: tuple[int, int]
    serializer_field_class = serializers.IntegerField

    def serializer_kwargs(self, column: Column) -> dict[str, Any]:
        low, high = self.bounds
        return {"min_value": low, "max_value": high}

    def parse(self, raw: str) -> int:
        text = str(raw).strip()
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"{raw!r} is not a valid integer")
        return self.check_literal(int(text))

    def check_literal(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not a valid integer")
        low, high = self.bounds
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range for {self.name}")
        return value


@register
class IntType(_Integer):
    name = "int"
    aliases = ("integer", "int4", "smallint", "int2")
    field_class = models.IntegerField
    bounds = (-(2**31), 2**31 - 1)
    openapi_schema = {"type": "integer", "format": "int32"}
    example = 42
    django_field_types = (
        "AutoField",
        "SmallAutoField",
        "IntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
    )
    widens_to = frozenset({"bigint", "float", "decimal"})

    def describe(self, column: Column | None = None) -> str:
        return "integer"


@register
class BigIntType(_Integer):
    name = "bigint"
    aliases = ("int8",)
    field_class = models.BigIntegerField
    bounds = (-(2**63), 2**63 - 1)
    openapi_schema = {"type": "integer", "format": "int64"}
    example = 1_000_000
    django_field_types = ("BigAutoField", "BigIntegerField", "PositiveBigIntegerField")
    widens_to = frozenset({"decimal"})


@register
class FloatType(_Number):
    name = "float"
    aliases = ("double", "double precision", "real", "float8", "float4")
    field_class = models.FloatField
    serializer_field_class = serializers.FloatField
    openapi_schema = {"type": "number", "format": "double"}
    example = 1.5
    django_field_types = ("FloatField",)
    widens_to = frozenset({"decimal"})

    def parse(self, raw: str) -> float:
        try:
            return self.check_literal(float(str(raw).strip()))
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid number") from None

    def check_literal(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a valid number")
        return float(value)

    def describe(self, column: Column | None = None) -> str:
        return "double precision"


@register
class DecimalType(_Number):
    name = "decimal"
    aliases = ("numeric", "money")
    field_class = models.DecimalField
    serializer_field_class = serializers.DecimalField
    openapi_schema = {"type": "string", "format": "decimal"}
    example = "12.50"
    django_field_types = ("DecimalField",)

    parameters = ("precision", "scale")

    def spelled_parameters(self, numbers: list[int]) -> dict[str, int]:
        """`numeric(10)` has no decimal places, as in SQL (not the default 4)."""
        return {"scale": 0, **super().spelled_parameters(numbers)}

    def parameters_of(self, field: models.Field[Any, Any]) -> dict[str, int | None]:
        return {
            "precision": getattr(field, "max_digits", None),
            "scale": getattr(field, "decimal_places", None),
        }

    def resolve_parameters(self, declared: dict[str, int | None]) -> dict[str, int | None]:
        precision = declared.get("precision") or DEFAULT_PRECISION
        scale = declared.get("scale")
        scale = DEFAULT_SCALE if scale is None else scale
        if not (1 <= precision <= 1000 and 0 <= scale <= precision):
            raise ValueError(
                f"numeric({precision},{scale}) is invalid (1 <= precision <= 1000, 0 <= scale <= precision)"
            )
        return {"precision": precision, "scale": scale}

    @staticmethod
    def precision_scale(column: Column | None) -> tuple[int, int]:
        if column is None:
            return DEFAULT_PRECISION, DEFAULT_SCALE
        return column.precision or DEFAULT_PRECISION, (
            DEFAULT_SCALE if column.scale is None else column.scale
        )

    def field_kwargs(self, column: Column) -> dict[str, Any]:
        precision, scale = self.precision_scale(column)
        return {"max_digits": precision, "decimal_places": scale}

    serializer_kwargs = field_kwargs

    def alteration(self, old_type: ColumnType, old: Column, new: Column) -> Alteration | None:
        """Fewer digits or places can lose values; more cannot."""
        if old_type is not self:
            return super().alteration(old_type, old, new)
        if (old.precision, old.scale) == (new.precision, new.scale):
            return None
        narrower = (new.precision or 0) < (old.precision or 0) or (new.scale or 0) < (old.scale or 0)
        return Alteration(
            f"precision {old.precision},{old.scale} -> {new.precision},{new.scale}",
            DESTRUCTIVE if narrower else SAFE,
        )

    def parse(self, raw: str) -> Decimal:
        try:
            return self.check_literal(Decimal(str(raw).strip()))
        except (InvalidOperation, ValueError):
            raise ValueError(f"{raw!r} is not a valid decimal number") from None

    def check_literal(self, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"{value!r} is not a valid decimal number")
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{number!r} is not a valid decimal number")
        return number

    def to_json(self, value: Any) -> Any:
        return None if value is None else str(value)

    def describe(self, column: Column | None = None) -> str:
        return "numeric({},{})".format(*self.precision_scale(column))
