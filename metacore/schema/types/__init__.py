"""Manifest column types: one class per type, found by canonical name or alias.

    get_type("timestamptz").django_field(column)

Adding a type is one module: subclass `ColumnType`, decorate it with `@register`, and
import the module (built-in ones are imported here).
"""
from . import boolean, ident, numeric, structured, temporal, text  # noqa: F401  (registers the built-ins)
from .base import EQUALITY_LOOKUPS, ORDERING_LOOKUPS, TEXT_LOOKUPS, ColumnType
from .registry import TYPES, UnknownColumnType, canonical_name, get_type, known_spellings, register

__all__ = [
    "TYPES", "ColumnType", "UnknownColumnType", "canonical_name", "get_type", "known_spellings",
    "register", "EQUALITY_LOOKUPS", "ORDERING_LOOKUPS", "TEXT_LOOKUPS",
]
