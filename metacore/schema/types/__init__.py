"""Manifest column types: one class per type, found by canonical name or alias.

    get_type("timestamptz").django_field(column)

A type is the whole contract of a column kind (docs/column-types.md): its Django field, its
write validation, its query-string parsing, its JSON and OpenAPI shapes, its metadata types
and which changes of type an upgrade may make safely. Adding one is one class: subclass
`ColumnType` and register it (metacore's own modules here, a host's from its `ready()`).
"""

import pkgutil
from importlib import import_module

from .base import (
    DESTRUCTIVE,
    EQUALITY_LOOKUPS,
    NEEDS_CHECK,
    ORDERING_LOOKUPS,
    SAFE,
    TEXT_LOOKUPS,
    Alteration,
    ColumnType,
)
from .registry import ColumnTypeRegistry, UnknownColumnType, canonical_name, column_types, get_type, register

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Alteration",
    "ColumnType",
    "ColumnTypeRegistry",
    "UnknownColumnType",
    "canonical_name",
    "column_types",
    "get_type",
    "register",
    "DESTRUCTIVE",
    "EQUALITY_LOOKUPS",
    "NEEDS_CHECK",
    "ORDERING_LOOKUPS",
    "SAFE",
    "TEXT_LOOKUPS",
]
