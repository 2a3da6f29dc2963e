"""HMAC-SHA256 signatures of outbound webhooks to an addon, and their verification.

Wire format (upstream `security.Signer.SignWithNonce`)::

    X-Metacore-Timestamp: <unix seconds>
    X-Metacore-Nonce:     <random, unique per request>
    X-Metacore-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<METHOD>.<path>.<nonce>.<sha256 hex of body>")>

The HMAC key is the installation secret exactly as handed out (its UTF-8 bytes). Replays
are refused across processes: every accepted nonce is stored in `WebhookNonce` (unique per
addon) until its timestamp leaves the allowed window.
"""

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from metacore.conf import metacore_settings
from metacore.installer.errors import WebhookRejected

if TYPE_CHECKING:
    from metacore.models import Installation

TIMESTAMP_HEADER = "X-Metacore-Timestamp"
SIGNATURE_HEADER = "X-Metacore-Signature"
NONCE_HEADER = "X-Metacore-Nonce"


def _signature(secret: str, timestamp: str, method: str, path: str, nonce: str, body: bytes) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    payload = f"{timestamp}.{method.upper()}.{path}.{nonce}.{body_hash}"
    return "sha256=" + hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign_request(
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timestamp: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers to attach to an outbound request."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    nonce = nonce or secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: stamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: _signature(secret, stamp, method, path, nonce, body),
    }


def signed_headers(installation: "Installation", method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """Sign with an installation's stored secret (needs METACORE['SECRET_MASTER_KEY'])."""
    from metacore.installer.secrets import reveal_secret

    return sign_request(reveal_secret(installation), method, path, body)


def verify_request(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    scope: str,
    now: float | None = None,
) -> None:
    """Accept a signed request once: right signature, timestamp within
    `WEBHOOK_MAX_SKEW_SECONDS`, nonce never seen for `scope` (e.g. the addon key).
    Raises WebhookRejected (401) otherwise."""
    get = headers.get
    timestamp, nonce, signature = get(TIMESTAMP_HEADER), get(NONCE_HEADER), get(SIGNATURE_HEADER)
    if not (timestamp and nonce and signature):
        raise WebhookRejected(f"missing {TIMESTAMP_HEADER}, {NONCE_HEADER} or {SIGNATURE_HEADER} header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookRejected(f"{TIMESTAMP_HEADER} is not a unix timestamp") from None
    if len(nonce) > 128:
        raise WebhookRejected(f"{NONCE_HEADER} is longer than 128 characters")
    max_skew = int(metacore_settings.WEBHOOK_MAX_SKEW_SECONDS)
    now = time.time() if now is None else now
    if abs(now - sent_at) > max_skew:
        raise WebhookRejected(f"{TIMESTAMP_HEADER} is outside the allowed window of {max_skew} seconds")
    if not hmac.compare_digest(_signature(secret, timestamp, method, path, nonce, body), signature):
        raise WebhookRejected("signature mismatch")
    _remember_nonce(scope, nonce, expires=sent_at + max_skew, now=now)


def _remember_nonce(scope: str, nonce: str, *, expires: float, now: float) -> None:
    from metacore.models import WebhookNonce

    WebhookNonce.objects.filter(expires_at__lt=_utc(now) - timedelta(seconds=1)).delete()
    try:
        with transaction.atomic():
            WebhookNonce.objects.create(scope=scope, nonce=nonce, expires_at=_utc(expires))
    except IntegrityError:
        raise WebhookRejected("replayed request: this nonce was already used") from None


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
