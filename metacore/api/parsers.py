"""The JSON body parser of every metacore view: DRF's, plus the input limits.

A body over `DATA_UPLOAD_MAX_MEMORY_SIZE` answers 413 (DRF reads the stream directly, so
Django's own limit never applies to it), and `metacore.limits.loads` refuses JSON nested
deeper than `MAX_JSON_DEPTH` and NaN/Infinity, all as envelopes with a machine code.
"""

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from metacore import limits
from metacore.api.errors import RequestTooLarge


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"the request body is larger than {limit} bytes")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return limits.loads(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"malformed JSON: the body is not {encoding} text ({exc.reason})") from None
        except limits.JSONInputError as exc:
            raise ParseError(str(exc), code=exc.code) from None
