"""Manifest column types: one class per type, found by canonical name or alias.

    get_type("timestamptz").django_field(column)

Adding a type is adding one module to this package: subclass `ColumnType` and decorate it
with `@register`. Every module here is imported below, which registers its types.
"""

import pkgutil
from importlib import import_module

from .base import EQUALITY_LOOKUPS, ORDERING_LOOKUPS, TEXT_LOOKUPS, ColumnType
from .registry import TYPES, UnknownColumnType, canonical_name, get_type, known_spellings, register

for _module in pkgutil.iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = [
    "TYPES",
    "ColumnType",
    "UnknownColumnType",
    "canonical_name",
    "get_type",
    "known_spellings",
    "register",
    "EQUALITY_LOOKUPS",
    "ORDERING_LOOKUPS",
    "TEXT_LOOKUPS",
]
