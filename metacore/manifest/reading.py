"""Typed reads of manifest JSON that record a problem instead of raising."""

from __future__ import annotations

from typing import Any, Literal, TypeVar, overload

from .errors import Problems, at

_JSON_TYPE = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, words in _JSON_TYPE.items():
        if isinstance(value, kind):
            return words
    return "a number" if isinstance(value, float) else type(value).__name__


_T = TypeVar("_T")


class Reader:
    def __init__(self, problems: Problems):
        self.problems = problems

    def _typed(self, value: Any, kind: type[_T], path: str, required: bool) -> _T | None:
        if value is None:
            if required:
                self.problems.add(path, "required")
            return None
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        self.problems.add(path, f"must be {_JSON_TYPE[kind]}, not {_describe(value)}")
        return None

    def obj(self, value: Any, path: str, *, required: bool = False) -> dict[str, Any] | None:
        return self._typed(value, dict, path, required)

    def items(
        self, value: Any, path: str, *, required: bool = False, min_items: int = 0
    ) -> list[tuple[str, Any]]:
        """(path, item) pairs of an array; [] when absent or not an array."""
        found = self._typed(value, list, path, required)
        if found is None:
            return []
        if len(found) < min_items:
            self.problems.add(path, f"needs at least {min_items} item{'s' if min_items > 1 else ''}")
        return [(at(path, i), item) for i, item in enumerate(found)]

    def objects(
        self, value: Any, path: str, *, required: bool = False, min_items: int = 0
    ) -> list[tuple[str, dict[str, Any]]]:
        pairs = []
        for item_path, item in self.items(value, path, required=required, min_items=min_items):
            if self.obj(item, item_path, required=True) is not None:
                pairs.append((item_path, item))
        return pairs

    @overload
    def string(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str,
        non_empty: Literal[False] = False,
    ) -> str: ...

    @overload
    def string(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str | None = None,
        non_empty: bool = False,
    ) -> str | None: ...

    def string(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str | None = None,
        non_empty: bool = False,
    ) -> str | None:
        value = self._typed(data.get(key), str, at(path, key), required)
        if value is not None and non_empty and not value.strip():
            self.problems.add(at(path, key), "must not be empty")
            return None
        return default if value is None else value

    def boolean(self, data: dict[str, Any], key: str, path: str, *, default: bool = False) -> bool:
        value = self._typed(data.get(key), bool, at(path, key), False)
        return default if value is None else value

    def integer(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = data.get(key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        value = self._typed(value, int, at(path, key), False)
        if value is None:
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.problems.add(at(path, key), f"{value} is out of range ({minimum}..{maximum})")
            return None
        return value

    def strings(self, value: Any, path: str) -> list[str]:
        found = []
        for item_path, item in self.items(value, path):
            if self._typed(item, str, item_path, True) is not None:
                found.append(item)
        return found

    def known_keys(self, data: dict[str, Any], allowed: frozenset[str] | set[str], path: str) -> None:
        """Strict objects (v3 schema `additionalProperties: false`): name every stray field."""
        for key in data:
            if key not in allowed:
                self.problems.add(at(path, key), "unknown field (not allowed here)")
