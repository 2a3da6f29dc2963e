"""The registry of column types: canonical names and aliases -> one ColumnType instance.

metacore's own types register when `metacore.schema.types` is imported; a host adds its own
from its app's `ready()` (docs/column-types.md), as Baserow's apps fill its field registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models

from .base import ColumnType


class UnknownColumnType(ValueError):
    def __init__(self, name: str):
        super().__init__(f'unknown type "{name}"')
        self.type_name = name


class ColumnTypeRegistry:
    """Column types by canonical name, and every spelling (aliases) of each."""

    def __init__(self) -> None:
        self._types: dict[str, ColumnType] = {}
        self._spellings: dict[str, str] = {}
        self._django_fields: dict[str, str] = {}  # Django internal field type -> type name

    def register(self, cls: type[ColumnType]) -> type[ColumnType]:
        """Make a ColumnType available under its name and aliases (usable as a class decorator).

        A spelling (or a Django field type) that already belongs to another type is refused:
        a manifest column must mean one thing on every host."""
        spellings = [_normal(s) for s in (cls.name, *cls.aliases)]
        for what, claimed, names in (
            ("spelling", self._spellings, spellings),
            ("Django field", self._django_fields, cls.django_field_types),
        ):
            for name in names:
                owner = claimed.get(name)
                if owner is not None and owner != cls.name:
                    raise ValueError(f'column type {what} "{name}" already belongs to "{owner}"')
        self._spellings.update(dict.fromkeys(spellings, cls.name))
        self._django_fields.update(dict.fromkeys(cls.django_field_types, cls.name))
        self._types[cls.name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        """Forget a type and its spellings (a host that registered one for a while: tests)."""
        canonical = self.canonical_name(name)
        del self._types[canonical]
        for claimed in (self._spellings, self._django_fields):
            for name in [n for n, owner in claimed.items() if owner == canonical]:
                del claimed[name]

    def canonical_name(self, name: str) -> str:
        """`timestamptz` -> `datetime`; case and surrounding blanks do not matter."""
        try:
            return self._spellings[_normal(name)]
        except KeyError:
            raise UnknownColumnType(str(name)) from None

    def get(self, name: str) -> ColumnType:
        """The ColumnType for a canonical name or alias; UnknownColumnType (a ValueError) if none."""
        return self._types[self.canonical_name(name)]

    def for_django_field(self, field: models.Field[Any, Any]) -> ColumnType | None:
        """The type serving a host model's Django field, or None (files, durations...)."""
        name = self._django_fields.get(field.get_internal_type())
        return None if name is None else self._types[name]

    def spellings(self) -> list[str]:
        return sorted(self._spellings)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __iter__(self) -> Iterator[ColumnType]:
        return iter(list(self._types.values()))


def _normal(spelling: str) -> str:
    return " ".join(str(spelling).strip().lower().split())


#: The process-wide registry every subsystem reads.
column_types = ColumnTypeRegistry()
register = column_types.register
get_type = column_types.get
canonical_name = column_types.canonical_name
