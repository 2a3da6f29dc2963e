"""Input limits every entry point shares (HTTP bodies, bundle manifests, WebSocket frames).

`loads` is `json.loads` for untrusted text: a document nested deeper than `MAX_JSON_DEPTH`
(which would otherwise blow Python's recursion limit in the parser, a serializer's deep
copy or the response's encoder) and the non-JSON constants `NaN`/`Infinity` (which could
not be sent back as valid JSON) are refused with `JSONInputError`, a `ValueError`.
"""

import json
from collections.abc import Iterable
from typing import Any, NoReturn

MAX_JSON_DEPTH = 64


class JSONInputError(ValueError):
    """Text that is not acceptable JSON; `code` is the machine code of the refusal."""

    def __init__(self, message: str, code: str = "parse_error") -> None:
        super().__init__(message)
        self.code = code


def _reject_constant(name: str) -> NoReturn:
    raise JSONInputError(f"{name} is not a JSON value")


def loads(text: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH) -> Any:  # JSON: any shape
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels", code="nesting_too_deep") from None
    except JSONInputError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JSONInputError(f"malformed JSON: {exc}") from None
    check_depth(value, max_depth)
    return value


def check_depth(value: object, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise `JSONInputError` when lists/dicts nest deeper than `max_depth` (iterative, so a
    deep value cannot exhaust the stack here either)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JSONInputError(f"JSON nested deeper than {max_depth} levels", code="nesting_too_deep")
        stack.extend((child, depth + 1) for child in children)
