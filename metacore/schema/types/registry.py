"""The registry of column types: canonical names and aliases -> one ColumnType instance."""

from __future__ import annotations

from .base import ColumnType

TYPES: dict[str, ColumnType] = {}
_ALIASES: dict[str, str] = {}


class UnknownColumnType(ValueError):
    def __init__(self, name: str):
        super().__init__(f'unknown type "{name}"')
        self.type_name = name


def register(cls: type[ColumnType]) -> type[ColumnType]:
    """Class decorator: make a ColumnType available under its name and aliases."""
    instance = cls()
    for spelling in (cls.name, *cls.aliases):
        owner = _ALIASES.get(spelling)
        if owner is not None and owner != cls.name:
            raise ValueError(f'column type spelling "{spelling}" already belongs to "{owner}"')
        _ALIASES[spelling] = cls.name
    TYPES[cls.name] = instance
    return cls


def canonical_name(name: str) -> str:
    """`timestamptz` -> `datetime`; case and surrounding blanks do not matter."""
    spelling = " ".join(str(name).strip().lower().split())
    try:
        return _ALIASES[spelling]
    except KeyError:
        raise UnknownColumnType(str(name)) from None


def get_type(name: str) -> ColumnType:
    """The ColumnType for a canonical name or alias; UnknownColumnType (a ValueError) if none."""
    return TYPES[canonical_name(name)]


def known_spellings() -> list[str]:
    return sorted(_ALIASES)
