"""The per-installation secret: 32 random bytes handed out once, kept only as a hash.

The host signs its outbound webhooks to an addon with it (see `webhooks.py`), so it also
keeps an encrypted copy when `METACORE['SECRET_MASTER_KEY']` is configured; without a master
key the host can verify a presented secret but cannot sign with it.
"""
import base64
import hashlib
import hmac
import secrets as _random

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from metacore.conf import metacore_settings
from metacore.errors import Conflict

SECRET_BYTES = 32


def _fernet():
    master = metacore_settings.SECRET_MASTER_KEY
    if not master:
        return None
    material = master.encode() if isinstance(master, str) else bytes(master)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"metacore installation secret").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def hash_secret(secret: str) -> str:
    """SHA-256 hex: the secret has 256 bits of entropy, so a fast hash does not weaken it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_secret(installation) -> str:
    """Create (or rotate) the installation's secret and return it; it is never readable again
    through the API. The previous secret stops working at once."""
    secret = _random.token_hex(SECRET_BYTES)
    fernet = _fernet()
    installation.secret_hash = hash_secret(secret)
    installation.secret_encrypted = fernet.encrypt(secret.encode()).decode() if fernet else ""
    installation.save(update_fields=["secret_hash", "secret_encrypted", "updated_at"])
    return secret


def secret_matches(installation, presented: str) -> bool:
    return bool(installation.secret_hash) and hmac.compare_digest(installation.secret_hash, hash_secret(presented))


def reveal_secret(installation) -> str:
    """The stored secret, for signing outbound requests (needs the master key)."""
    fernet = _fernet()
    if fernet is None or not installation.secret_encrypted:
        raise Conflict(
            f"addon {installation.key!r} has no recoverable secret: configure METACORE['SECRET_MASTER_KEY'] "
            "and rotate the secret"
        )
    try:
        return fernet.decrypt(installation.secret_encrypted.encode()).decode()
    except InvalidToken:
        raise Conflict(
            f"addon {installation.key!r}: the stored secret does not decrypt with the current master key; rotate it"
        ) from None
