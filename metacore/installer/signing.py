"""Ed25519 bundle signatures, kept inside the manifest as upstream does.

A signed bundle's `manifest.json` carries a `signature` block::

    "signature": {"algorithm": "ed25519", "key_id": "<16 hex>", "signed_at": "<ISO 8601>",
                  "checksums": {"<relpath>": "<sha256 hex>", ...},
                  "digest": "<sha256 hex of the signed payload>", "value": "<128 hex>"}

The signed payload is `canonical_json({"checksums": checksums, "manifest": manifest})`,
where `manifest` is the manifest.json object without its `signature` key and canonical
JSON is UTF-8, keys sorted, no insignificant whitespace. `value` is the ed25519 signature
of the 32 digest bytes (the upstream kernel also signs the raw digest). Because every file
but manifest.json is pinned by its checksum and the manifest by the payload, the signature
covers the whole archive content, independently of how it was compressed. See
docs/bundles.md.

The upstream kernel's marketplace format is also verified (`security/signature.go`): the
ed25519 signature of the SHA-256 of the raw `.tar.gz` bytes, which cannot live inside the
archive, so it travels beside it as `<archive>.sig`, a JSON object with upstream's
`Signature` fields (`algorithm`, `digest` and `value` in hex, optional per-entry `checksums`,
`developer_id`, `signed_at`...). The same trusted keys (upstream's MARKETPLACE_PUBKEY(S) hex
keys go into METACORE['TRUSTED_KEYS']) verify both.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from metacore import limits
from metacore.conf import metacore_settings
from metacore.errors import InvalidInput
from metacore.installer.errors import SignatureError

ALGORITHM = "ed25519"
MANIFEST_NAME = "manifest.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignatureCheck:
    """What verification established: `signed` False only when unsigned bundles are allowed."""

    signed: bool
    key_id: str = ""
    digest: str = ""


# ---------------------------------------------------------------- canonical bytes


def canonical_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def signed_payload(manifest: dict[str, Any], checksums: dict[str, str]) -> bytes:
    """The exact bytes whose SHA-256 is signed."""
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    return canonical_json({"checksums": checksums, "manifest": unsigned})


def payload_digest(manifest: dict[str, Any], checksums: dict[str, str]) -> bytes:
    return hashlib.sha256(signed_payload(manifest, checksums)).digest()


# ---------------------------------------------------------------- keys


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: the first 16 hex digits of SHA-256(raw key)."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The form to paste into METACORE['TRUSTED_KEYS'] (base64 of the 32 raw bytes)."""
    return base64.b64encode(_raw_public(public_key)).decode()


def _decode_32(text: str) -> bytes | None:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def load_public_key(value: str | bytes) -> Ed25519PublicKey:
    """A trusted key: PEM (SubjectPublicKeyInfo), or the 32 raw bytes as hex or base64."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    if "BEGIN PUBLIC KEY" in text:
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("PEM key is not an ed25519 public key")
        return key
    raw = _decode_32(text)
    if raw is None:
        raise ValueError("expected a PEM public key or 32 bytes as hex or base64")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """A signing key file: PEM (PKCS#8, unencrypted) or the 32-byte seed as hex or base64."""
    text = data.decode(errors="replace")
    if "PRIVATE KEY" in text:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("PEM key is not an ed25519 private key")
        return key
    raw = _decode_32(text)
    if raw is None:
        raise ValueError("expected a PEM private key or a 32-byte seed as hex or base64")
    return Ed25519PrivateKey.from_private_bytes(raw)


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def trusted_keys() -> list[Ed25519PublicKey]:
    """METACORE['TRUSTED_KEYS'] parsed; a bad entry is a configuration error (checks report it)."""
    keys = []
    for index, entry in enumerate(metacore_settings.TRUSTED_KEYS or []):
        try:
            keys.append(load_public_key(entry))
        except ValueError as exc:
            raise InvalidInput(
                f"METACORE['TRUSTED_KEYS'][{index}] is not an ed25519 public key: {exc}"
            ) from exc
    return keys


# ---------------------------------------------------------------- verify


def verify_bundle(manifest: dict[str, Any], files: dict[str, str]) -> SignatureCheck:
    """Check a bundle before anything is installed.

    `manifest` is the manifest.json object as read, `files` maps every regular file of the
    bundle (relative path) to its SHA-256 hex. Raises SignatureError unless the bundle is
    signed by a trusted key with intact contents, or unsigned while the host allows it.
    """
    block = manifest.get("signature")
    if not block or (isinstance(block, dict) and not str(block.get("value") or "").strip()):
        if metacore_settings.ALLOW_UNSIGNED_BUNDLES:
            return SignatureCheck(signed=False)
        raise SignatureError(
            "the bundle is not signed and this host requires signed bundles "
            "(METACORE['ALLOW_UNSIGNED_BUNDLES'] is off); sign it with `manage.py metacore_sign`"
        )
    if not isinstance(block, dict):
        raise SignatureError('"signature" must be an object')

    algorithm = str(block.get("algorithm") or "").strip().lower()
    if algorithm != ALGORITHM:
        raise SignatureError(f'unsupported algorithm {block.get("algorithm")!r} (only "ed25519")')

    checksums = block.get("checksums")
    if not isinstance(checksums, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _HEX64.fullmatch(v) for k, v in checksums.items()
    ):
        raise SignatureError('"checksums" must map each file path to its lowercase SHA-256 hex digest')
    _check_files(checksums, files)

    digest = payload_digest(manifest, checksums)
    declared_digest = str(block.get("digest") or "").strip().lower()
    if declared_digest and declared_digest != digest.hex():
        raise SignatureError("digest mismatch: the manifest or its checksums changed after signing")

    key = _signing_key(block, digest)
    if key is None:
        named = f" (key_id {block.get('key_id')})" if block.get("key_id") else ""
        raise SignatureError(f"the signature{named} does not verify under any trusted key")
    return SignatureCheck(signed=True, key_id=key_id(key), digest=digest.hex())


def _signing_key(block: dict[str, Any], digest: bytes) -> Ed25519PublicKey | None:
    """The trusted key under which `block["value"]` (hex) signs `digest`, if any."""
    try:
        value = bytes.fromhex(str(block.get("value") or "").strip())
    except ValueError:
        raise SignatureError('"value" is not hex') from None
    if len(value) != 64:
        raise SignatureError(f'"value" has {len(value)} bytes, an ed25519 signature has 64')
    keys = trusted_keys()
    if not keys:
        raise SignatureError("no trusted keys are configured (METACORE['TRUSTED_KEYS'] is empty)")
    for key in keys:
        try:
            key.verify(value, digest)
        except InvalidSignature:
            continue
        return key
    return None


DETACHED_SUFFIX = ".sig"


def detached_signature_path(archive: Path) -> Path:
    return archive.with_name(archive.name + DETACHED_SUFFIX)


def read_detached_signature(archive: Path) -> dict[str, Any] | None:
    """The upstream-format signature beside an archive (`<archive>.sig`), or None."""
    path = detached_signature_path(Path(archive))
    if Path(archive).is_dir() or not path.is_file():
        return None
    try:
        block = json.loads(path.read_bytes()[:1_000_000])
    except ValueError as exc:
        raise SignatureError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(block, dict):
        raise SignatureError(f"{path.name} must hold a JSON object")
    return block


def verify_tarball(archive_sha256: str, block: dict[str, Any], files: dict[str, str]) -> SignatureCheck:
    """Upstream's check (`security.VerifyBundle`): `value` signs the SHA-256 of the raw
    archive; a declared `digest` must be that hash; declared `checksums` must match every
    entry but manifest.json, with none missing or extra."""
    algorithm = str(block.get("algorithm") or ALGORITHM).strip().lower()
    if algorithm != ALGORITHM:
        raise SignatureError(f'unsupported algorithm {block.get("algorithm")!r} (only "ed25519")')
    declared = str(block.get("digest") or "").strip().lower()
    if declared and declared != archive_sha256:
        raise SignatureError("digest mismatch: the archive changed after it was signed")
    key = _signing_key(block, bytes.fromhex(archive_sha256))
    if key is None:
        raise SignatureError("the archive's signature does not verify under any trusted key")
    checksums = block.get("checksums") or {}
    if checksums:
        if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
            raise SignatureError('"checksums" must map each entry to its SHA-256 hex digest')
        _check_files({k: v.strip().lower() for k, v in checksums.items() if k != MANIFEST_NAME}, files)
    return SignatureCheck(signed=True, key_id=key_id(key), digest=archive_sha256)


def _check_files(checksums: dict[str, str], files: dict[str, str]) -> None:
    present = {path: digest for path, digest in files.items() if path != MANIFEST_NAME}
    problems = []
    missing = sorted(set(checksums) - set(present))
    if missing:
        problems.append("declared file(s) missing: " + ", ".join(missing))
    extra = sorted(set(present) - set(checksums))
    if extra:
        problems.append("undeclared file(s): " + ", ".join(extra))
    changed = sorted(p for p in set(checksums) & set(present) if present[p].lower() != checksums[p])
    if changed:
        problems.append("checksum mismatch: " + ", ".join(changed))
    if problems:
        raise SignatureError("; ".join(problems))


# ---------------------------------------------------------------- sign


def read_source(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read a bundle the author wants to sign (directory or .tar.gz): its manifest and files.
    Only regular files are taken; the installer's own loader does the untrusted-input checks."""
    path = Path(path)
    contents: dict[str, bytes] = {}
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            contents[file.relative_to(path).as_posix()] = file.read_bytes()
    else:
        try:
            with tarfile.open(path, "r:gz") as archive:
                for member in archive.getmembers():
                    if member.isfile():
                        name = member.name.removeprefix("./")
                        contents[name] = archive.extractfile(member).read()  # type: ignore[union-attr]  # None only for non-files, refused above
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(f"{path}: not a readable .tar.gz bundle or directory ({exc})") from exc
    if MANIFEST_NAME not in contents:
        raise InvalidInput(f"{path}: no {MANIFEST_NAME} at the bundle root")
    try:
        manifest = limits.loads(contents.pop(MANIFEST_NAME))
    except ValueError as exc:
        raise InvalidInput(f"{path}: {MANIFEST_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise InvalidInput(f"{path}: {MANIFEST_NAME} must hold a JSON object")
    return manifest, contents


def sign_manifest(
    manifest: dict[str, Any], contents: dict[str, bytes], private_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """Return a copy of `manifest` with a fresh `signature` block over `contents`."""
    checksums = {path: hashlib.sha256(data).hexdigest() for path, data in sorted(contents.items())}
    digest = payload_digest(manifest, checksums)
    signed = {k: v for k, v in manifest.items() if k != "signature"}
    signed["signature"] = {
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "signed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "checksums": checksums,
        "digest": digest.hex(),
        "value": private_key.sign(digest).hex(),
    }
    return signed


def write_bundle(manifest: dict[str, Any], contents: dict[str, bytes]) -> bytes:
    """A deterministic .tar.gz (sorted entries, zero mtimes, no owners)."""
    buffer = io.BytesIO()
    entries = {MANIFEST_NAME: json.dumps(manifest, indent=2, ensure_ascii=False).encode(), **contents}
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name in [MANIFEST_NAME] + sorted(contents):
                info = tarfile.TarInfo(name)
                info.size = len(entries[name])
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(entries[name]))
    return buffer.getvalue()


def sign_bundle(source: Path, private_key: Ed25519PrivateKey) -> bytes:
    """Sign a bundle directory or archive; returns the signed .tar.gz bytes."""
    manifest, contents = read_source(source)
    return write_bundle(sign_manifest(manifest, contents, private_key), contents)


def sign_tarball(
    archive: bytes, private_key: Ed25519PrivateKey, contents: dict[str, bytes] | None = None
) -> dict[str, object]:
    """Upstream's detached signature of an archive (write it to `<archive>.sig`)."""
    digest = hashlib.sha256(archive).digest()
    block: dict[str, object] = {
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "signed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "digest": digest.hex(),
        "value": private_key.sign(digest).hex(),
    }
    if contents is not None:
        block["checksums"] = {
            path: hashlib.sha256(data).hexdigest() for path, data in sorted(contents.items())
        }
    return block
