"""Metadata for the caller: in the caller's language (upstream `metadata/i18n.go`): every string of the
table and modal metadata that is an i18n key (starts with `models.`) is replaced by the
manifest's translation for the best language of `Accept-Language`; a key without a
translation stays as it is, as upstream.

The manifest's `i18n` block (top level, or `metadata.i18n` in v3) maps a language to
`{key: text}`: `{"es": {"models.tickets.title": "Tickets"}, "en": {...}}`.

And with the caller's organization's validators (upstream `metadata/org_validators.go`): a
column's `validation.custom` or a field's `validation` of the form `$org.<key>` becomes what
`METACORE['ORG_CONFIG_RESOLVER'](organization_id, key)` answers (unchanged without one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest

PREFIX = "models."


def catalog(manifest: Manifest) -> dict[str, dict[str, str]]:
    raw = manifest.raw or {}
    block = raw.get("i18n") or (raw.get("metadata") or {}).get("i18n") or {}
    if not isinstance(block, dict):
        return {}
    return {str(lang).lower(): texts for lang, texts in block.items() if isinstance(texts, dict)}


def preferred_languages(header: str | None) -> list[str]:
    """`es-MX,es;q=0.9,en;q=0.5` -> ["es-mx", "es", "en"] (by quality, then order)."""
    ranked = []
    for position, part in enumerate((header or "").split(",")):
        lang, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if lang and lang != "*" and quality > 0:
            ranked.append((-quality, position, lang.lower()))
    return [lang for _, _, lang in sorted(ranked)]


def texts_for(manifest: Manifest, header: str | None) -> dict[str, str]:
    """The manifest's translations for the best matching language ({} when none matches)."""
    languages = catalog(manifest)
    for lang in preferred_languages(header):
        for candidate in (lang, lang.split("-")[0]):
            if candidate in languages:
                return languages[candidate]
    return {}


def localize(value: Any, texts: dict[str, str]) -> Any:
    """A copy of `value` (metadata JSON) with every `models.*` string translated."""
    if not texts:
        return value
    if isinstance(value, str):
        return texts.get(value, value) if value.startswith(PREFIX) else value
    if isinstance(value, dict):
        return {k: localize(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [localize(v, texts) for v in value]
    return value


ORG_PREFIX = "$org."


def resolve_org_validators(meta: dict[str, Any], resolve: Callable[[str], object]) -> dict[str, Any]:
    """A copy of table or modal metadata with `$org.<key>` validators resolved by `resolve(key)`."""

    def one(value: object) -> object:
        if isinstance(value, str) and value.startswith(ORG_PREFIX) and len(value) > len(ORG_PREFIX):
            return resolve(value[len(ORG_PREFIX) :]) or value
        return value

    def entry(item: object) -> object:
        if not isinstance(item, dict) or "validation" not in item:
            return item
        validation = item["validation"]
        if isinstance(validation, dict) and "custom" in validation:
            validation = {**validation, "custom": one(validation["custom"])}
        else:
            validation = one(validation)
        return {**item, "validation": validation}

    out = dict(meta)
    for key in ("columns", "fields"):
        if isinstance(out.get(key), list):
            out[key] = [entry(item) for item in out[key]]
    return out
