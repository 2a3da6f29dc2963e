"""Secrets the host keeps for an addon: its installation secret and its secret settings.

The per-installation secret is 32 random bytes handed out once, kept only as a hash. The
host signs its outbound webhooks to an addon with it (see `webhooks.py`), so it also keeps
an encrypted copy when `METACORE['SECRET_MASTER_KEY']` is configured; without a master key
the host can verify a presented secret but cannot sign with it.

Secret settings (`"secret": true` or `"type": "secret"` in the manifest's settings) are
write-only: stored encrypted (Fernet, key derived from `METACORE['SECRETS_KEY']` or Django's
`SECRET_KEY`), answered as `MASK` everywhere, and decrypted only for the addon's own
`env_get` inside the sandbox.
"""

import base64
import hashlib
import hmac
import json
import logging
import secrets as _random
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings as django_settings

from metacore.conf import metacore_settings
from metacore.errors import Conflict

if TYPE_CHECKING:
    from metacore.manifest.model import Manifest
    from metacore.models import Installation, OrganizationInstallation

#: Addon settings as stored: JSON values by key.
Settings = dict[str, Any]

log = logging.getLogger("metacore.secrets")

SECRET_BYTES = 32
MASK = "********"  # what every interface answers for a secret setting that has a value
SEALED = "$sealed"  # a stored secret setting: {"$sealed": "<Fernet token of its JSON value>"}


def _fernet() -> Fernet | None:
    master = metacore_settings.SECRET_MASTER_KEY
    if not master:
        return None
    material = master.encode() if isinstance(master, str) else bytes(master)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"metacore installation secret").derive(
        material
    )
    return Fernet(base64.urlsafe_b64encode(key))


def hash_secret(secret: str) -> str:
    """SHA-256 hex: the secret has 256 bits of entropy, so a fast hash does not weaken it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_secret(installation: "Installation | OrganizationInstallation") -> str:
    """Create (or rotate) the installation's secret and return it; it is never readable again
    through the API. The previous secret stops working at once."""
    secret = _random.token_hex(SECRET_BYTES)
    fernet = _fernet()
    installation.secret_hash = hash_secret(secret)
    installation.secret_encrypted = fernet.encrypt(secret.encode()).decode() if fernet else ""
    installation.save(update_fields=["secret_hash", "secret_encrypted", "updated_at"])
    return secret


def secret_matches(installation: "Installation", presented: str) -> bool:
    return bool(installation.secret_hash) and hmac.compare_digest(
        installation.secret_hash, hash_secret(presented)
    )


def reveal_secret(installation: "Installation | OrganizationInstallation") -> str:
    """The stored secret, for signing outbound requests (needs the master key)."""
    from metacore.models import Installation

    fernet = _fernet()
    key = installation.key if isinstance(installation, Installation) else installation.installation.key
    if fernet is None or not installation.secret_encrypted:
        raise Conflict(
            f"addon {key!r} has no recoverable secret: configure METACORE['SECRET_MASTER_KEY'] "
            "and rotate the secret"
        )
    try:
        return fernet.decrypt(installation.secret_encrypted.encode()).decode()
    except InvalidToken:
        raise Conflict(
            f"addon {key!r}: the stored secret does not decrypt with the current master key; rotate it"
        ) from None


# -- secret settings -----------------------------------------------------------------------


def _settings_fernet() -> Fernet:
    material = metacore_settings.SECRETS_KEY or django_settings.SECRET_KEY
    material = material.encode() if isinstance(material, str) else bytes(material)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"metacore secret settings").derive(
        material
    )
    return Fernet(base64.urlsafe_b64encode(key))


def secret_setting_keys(manifest: "Manifest") -> frozenset[str]:
    """Keys of the settings the manifest marks secret (`secret: true`, or upstream's `type: secret`)."""
    from metacore.installer.setting_types import declared_settings

    return frozenset(spec.key for spec in declared_settings(manifest) if spec.secret)


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def seal_settings(manifest: "Manifest", settings: Settings, previous: Settings | None = None) -> Settings:
    """`settings` as stored: secret values encrypted. A secret sent back as `MASK` (a client
    echoing what it was shown) keeps the stored value; a sealed value is kept only when it is
    the one already stored (a client cannot plant another installation's ciphertext)."""
    secret = secret_setting_keys(manifest)
    previous = previous or {}
    sealed: Settings = {}
    for key, value in settings.items():
        if is_sealed(value) and previous.get(key) == value:
            sealed[key] = value
        elif is_sealed(value) or (key in secret and value not in (None, "", MASK)):
            sealed[key] = {SEALED: _settings_fernet().encrypt(json.dumps(value).encode()).decode()}
        elif key in secret and value == MASK:
            if key in previous:
                sealed[key] = previous[key]
        else:
            sealed[key] = value
    return sealed


def masked_settings(manifest: "Manifest", settings: Settings) -> Settings:
    """What any interface may show: secret values replaced by `MASK`."""
    secret = secret_setting_keys(manifest)
    return {
        key: MASK if (key in secret or is_sealed(value)) and value not in (None, "") else value
        for key, value in (settings or {}).items()
    }


def unsealed_settings(settings: Settings) -> Settings:
    """The plaintext settings, for the addon's own sandbox only. A value that does not decrypt
    (SECRET_KEY or SECRETS_KEY changed) is left out and logged, never passed on as ciphertext."""
    plain: Settings = {}
    for key, value in (settings or {}).items():
        if not is_sealed(value):
            plain[key] = value
            continue
        try:
            plain[key] = json.loads(_settings_fernet().decrypt(value[SEALED].encode()))
        except (InvalidToken, ValueError):
            log.error(
                "secret setting %r does not decrypt with the current key (was SECRET_KEY or "
                "METACORE['SECRETS_KEY'] changed?); set it again",
                key,
            )
    return plain
