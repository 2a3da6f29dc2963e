"""Installation settings typed by the manifest's `settings[]`: one definition read by the
management API, the admin's settings form and the installer, so every path validates alike.

Types (upstream's): `string`/`text` (and any type this host does not know: accepted as
declared), `number`, `integer`, `boolean`, `select` (one of `options[].value`), `secret`
(a string, write-only: never shown back), and so is any setting marked `"secret": true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metacore.errors import InvalidInput
from metacore.manifest.model import Manifest

TEXT_TYPES = ("string", "text", "textarea", "url", "email")


@dataclass(frozen=True)
class SettingSpec:
    key: str
    type: str
    label: str
    help: str
    required: bool
    default: object
    options: tuple[tuple[object, str], ...]  # ((value, label), ...) for `select`
    secret: bool  # write-only: type `secret`, or `"secret": true` on another type

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING


_MISSING = object()


def declared_settings(manifest: Manifest | dict[str, Any]) -> list[SettingSpec]:
    """The manifest's `settings[]` (a Manifest or its stored JSON snapshot)."""
    if not isinstance(manifest, Manifest):
        manifest = Manifest.model_validate(manifest)
    specs = []
    for item in manifest.settings:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        options = tuple(
            (o.get("value"), str(o.get("label", o.get("value")))) if isinstance(o, dict) else (o, str(o))
            for o in item.get("options") or ()
        )
        default = item.get("default", item.get("default_value", _MISSING))
        specs.append(
            SettingSpec(
                key=item["key"],
                type=str(item.get("type") or "string").lower(),
                label=str(item.get("label") or item["key"]),
                help=str(item.get("description") or item.get("help") or ""),
                required=bool(item.get("required")),
                default=default,
                options=options,
                secret=item.get("type") == "secret" or item.get("secret") is True,
            )
        )
    return specs


def clean_value(spec: SettingSpec, value: object) -> object:
    """The value as stored, or ValueError naming what the type wants. None clears a setting."""
    if value is None:
        if spec.required:
            raise ValueError("required")
        return None
    if spec.type in TEXT_TYPES or spec.secret:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if spec.required and not value.strip():
            raise ValueError("required")
        return value
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if spec.type in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError("must be a number")
        if spec.type == "integer" and value != int(value):
            raise ValueError("must be a whole number")
        return int(value) if spec.type == "integer" or value == int(value) else float(value)
    if spec.type == "select":
        allowed = [v for v, _ in spec.options]
        if allowed and value not in allowed:
            raise ValueError(f"must be one of: {', '.join(map(str, allowed))}")
        return value
    return value  # a type this host does not know: kept as declared (upstream accepts it)


def clean_settings(
    manifest: Manifest | dict[str, Any],
    values: Mapping[str, object],
    *,
    addon: str,
    previous: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Check `values` against the declared settings: unknown keys and wrong types raise one
    InvalidInput naming every problem. A manifest that declares none accepts any keys. A
    value equal to the one stored (`previous`) is kept as it is: it was checked when it was
    set, and a write-only secret comes back in its stored form."""
    specs = {s.key: s for s in declared_settings(manifest)}
    if not specs:
        return dict(values)
    previous = previous or {}
    problems: dict[str, list[str]] = {}
    cleaned: dict[str, object] = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            problems[name] = [f"not a setting of {addon}; known: {', '.join(sorted(specs))}"]
            continue
        if name in previous and previous[name] == value and value is not None:
            cleaned[name] = value
            continue
        try:
            cleaned[name] = clean_value(spec, value)
        except ValueError as exc:
            problems[name] = [str(exc)]
    for spec in specs.values():
        if spec.required and spec.key not in values and not spec.has_default:
            problems[spec.key] = ["required"]
    if problems:
        unknown = sorted(k for k in problems if k not in specs)
        message = (
            f"unknown setting(s) for {addon}: {', '.join(unknown)}"
            if unknown
            else f"invalid setting(s) for {addon}: {', '.join(sorted(problems))}"
        )
        raise InvalidInput(message, errors=problems)
    return cleaned
