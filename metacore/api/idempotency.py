"""`Idempotency-Key` on create, import and actions (upstream `idempotency/`): a POST repeated
with the same key by the same user on the same path answers the first answer again (with
`Idempotent-Replay: true`) instead of running twice.

Answers are kept in Django's cache (`METACORE['IDEMPOTENCY_CACHE']`, default "default") for
`METACORE['IDEMPOTENCY_TTL_S']` (24 h, as upstream); several processes need a shared cache
(Redis, database). Only 2xx answers are kept, as upstream; the same key while the first
request still runs answers 409, and the same key with a different JSON body answers 422.
"""

import hashlib
import json

from django.core.cache import caches
from rest_framework.response import Response

from metacore.api.errors import KeyReused
from metacore.conf import metacore_settings
from metacore.errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _fingerprint(data):
    try:
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    except (TypeError, ValueError):
        return None


def idempotent(request, run):
    """`run()` -> Response, at most once per (user, method, path, Idempotency-Key)."""
    key = request.headers.get(HEADER)
    if not key:
        return run()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"{HEADER} is longer than {MAX_KEY_LENGTH} characters",
            errors={HEADER: [f"at most {MAX_KEY_LENGTH} characters"]},
        )
    cache = caches[metacore_settings.IDEMPOTENCY_CACHE]
    ttl = metacore_settings.IDEMPOTENCY_TTL_S
    composite = (
        "metacore:idem:"
        + hashlib.sha256(
            "\0".join((str(request.user.pk), request.method, request.path, key)).encode()
        ).hexdigest()
    )
    body = _fingerprint(request.data) if not request.FILES else None
    stored = cache.get(composite)
    if stored is not None:
        if stored["body"] and body and stored["body"] != body:
            raise KeyReused(
                f"{HEADER} was used with a different request body",
                errors={HEADER: ["already used with a different request body"]},
            )
        response = Response(stored["data"], status=stored["status"])
        response["Idempotent-Replay"] = "true"
        return response
    lock = composite + ":running"
    if not cache.add(lock, True, timeout=300):
        raise Conflict(
            f"a request with this {HEADER} is still running", errors={HEADER: ["request in progress"]}
        )
    try:
        response = run()
        if 200 <= response.status_code < 300:
            cache.set(
                composite, {"status": response.status_code, "data": response.data, "body": body}, timeout=ttl
            )
    finally:
        cache.delete(lock)
    return response
