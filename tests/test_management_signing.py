"""Bundle signing commands, signature rules, installation secrets and signed webhooks."""

import hashlib
import json
import subprocess
import sys
import tarfile
import time

import pytest
from django.core.management import CommandError, call_command

from metacore.errors import Conflict
from metacore.installer import webhooks
from metacore.installer.errors import WebhookRejected
from metacore.installer.secrets import issue_secret, reveal_secret, secret_matches
from metacore.installer.signing import (
    SignatureError,
    canonical_json,
    load_private_key,
    public_key_text,
    read_source,
    verify_bundle,
)
from metacore.models import Installation, WebhookNonce
from tests.conftest import ROOT
from tests.management_bundles import write_source


def _files(archive):
    with tarfile.open(archive) as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar if m.isfile()}


@pytest.fixture
def signed(tmp_path, settings):
    """keygen + sign through the commands; the key is trusted, unsigned bundles refused."""
    key = tmp_path / "signing.pem"
    call_command("metacore_keygen", str(key))
    public = (tmp_path / "signing.pem.pub").read_text().strip()
    settings.METACORE = {**settings.METACORE, "TRUSTED_KEYS": [public], "ALLOW_UNSIGNED_BUNDLES": False}
    out = tmp_path / "signed.tar.gz"
    call_command("metacore_sign", str(write_source(tmp_path / "src")), "--key", str(key), "--out", str(out))
    return out


def test_sign_then_verify(signed):
    manifest, contents = read_source(signed)
    block = manifest["signature"]
    assert block["algorithm"] == "ed25519" and len(block["value"]) == 128
    assert set(block["checksums"]) == {"README.md", "frontend/remoteEntry.js"}
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    payload = canonical_json({"checksums": block["checksums"], "manifest": unsigned})
    assert block["digest"] == hashlib.sha256(payload).hexdigest()
    check = verify_bundle(manifest, _files(signed))
    assert check.signed and check.key_id == block["key_id"] and check.digest == block["digest"]


def test_signing_is_deterministic_apart_from_signed_at(tmp_path, signed):
    again = tmp_path / "again.tar.gz"
    call_command("metacore_sign", str(signed), "--key", str(tmp_path / "signing.pem"), "--out", str(again))
    first, second = read_source(signed)[0]["signature"], read_source(again)[0]["signature"]
    assert (
        first["digest"] == second["digest"] and first["value"] == second["value"]
    )  # ed25519 is deterministic


def test_pem_hex_and_base64_trusted_keys(signed, settings, tmp_path):
    private = load_private_key((tmp_path / "signing.pem").read_bytes())
    from cryptography.hazmat.primitives import serialization

    pub = private.public_key()
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    raw_hex = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    manifest, _ = read_source(signed)
    for entry in (pem, raw_hex, public_key_text(pub)):
        settings.METACORE = {**settings.METACORE, "TRUSTED_KEYS": [entry]}
        assert verify_bundle(manifest, _files(signed)).signed


def test_signature_rules(signed, settings):
    manifest, _ = read_source(signed)
    files = _files(signed)
    cases = [
        ({**manifest, "signature": {**manifest["signature"], "value": "zz"}}, files, "not hex"),
        ({**manifest, "signature": {**manifest["signature"], "value": "00" * 10}}, files, "has 10 bytes"),
        (
            {**manifest, "signature": {**manifest["signature"], "checksums": {"README.md": "XYZ"}}},
            files,
            "checksums",
        ),
        ({**manifest, "signature": "yes"}, files, "must be an object"),
    ]
    for bad_manifest, bad_files, message in cases:
        with pytest.raises(SignatureError, match=message):
            verify_bundle(bad_manifest, bad_files)
    settings.METACORE = {**settings.METACORE, "TRUSTED_KEYS": []}
    with pytest.raises(SignatureError, match="no trusted keys"):
        verify_bundle(manifest, files)
    settings.METACORE = {**settings.METACORE, "TRUSTED_KEYS": ["garbage"]}
    with pytest.raises(Exception, match=r"TRUSTED_KEYS'\]\[0\]"):
        verify_bundle(manifest, files)
    settings.METACORE = {**settings.METACORE, "ALLOW_UNSIGNED_BUNDLES": True, "TRUSTED_KEYS": []}
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    assert verify_bundle(unsigned, files).signed is False
    with pytest.raises(SignatureError):  # a signature present is still checked
        verify_bundle(manifest, files)


def test_command_errors_are_one_line(tmp_path):
    with pytest.raises(CommandError, match="no such bundle"):
        call_command("metacore_sign", str(tmp_path / "missing"), "--key", str(tmp_path / "k"))
    (tmp_path / "k").write_text("not a key")
    write_source(tmp_path / "src")
    with pytest.raises(CommandError, match="expected a PEM private key"):
        call_command("metacore_sign", str(tmp_path / "src"), "--key", str(tmp_path / "k"))
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage")
    call_command("metacore_keygen", str(tmp_path / "good.pem"))
    with pytest.raises(CommandError, match="not a readable"):
        call_command("metacore_sign", str(tmp_path / "bad.tar.gz"), "--key", str(tmp_path / "good.pem"))
    with pytest.raises(CommandError, match="already exists"):
        call_command("metacore_keygen", str(tmp_path / "good.pem"))
    result = subprocess.run(
        [sys.executable, "manage.py", "metacore_sign", "nope", "--key", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr


# ------------------------------------------------------------------------ secrets and webhooks


@pytest.fixture
def installation(db):
    return Installation.objects.create(key="hooks", name="Hooks", version="1.0.0", manifest={})


def test_secret_hash_only_without_master_key(installation):
    secret = issue_secret(installation)
    installation.refresh_from_db()
    assert secret_matches(installation, secret) and not secret_matches(installation, "0" * 64)
    assert installation.secret_encrypted == "" and secret not in installation.secret_hash
    with pytest.raises(Conflict, match="SECRET_MASTER_KEY"):
        reveal_secret(installation)


def test_secret_encrypted_with_master_key(installation, settings):
    settings.METACORE = {**settings.METACORE, "SECRET_MASTER_KEY": "one master key"}
    secret = issue_secret(installation)
    installation.refresh_from_db()
    assert reveal_secret(installation) == secret
    settings.METACORE = {**settings.METACORE, "SECRET_MASTER_KEY": "another key"}
    with pytest.raises(Conflict, match="does not decrypt"):
        reveal_secret(installation)


def test_webhook_signature_matches_upstream_payload():
    headers = webhooks.sign_request(
        "s3cret", "post", "/hooks/x", b'{"a":1}', timestamp=1700000000, nonce="n1"
    )
    body_hash = hashlib.sha256(b'{"a":1}').hexdigest()
    import hmac

    expected = hmac.new(
        b"s3cret", f"1700000000.POST./hooks/x.n1.{body_hash}".encode(), hashlib.sha256
    ).hexdigest()
    assert headers == {
        "X-Metacore-Timestamp": "1700000000",
        "X-Metacore-Nonce": "n1",
        "X-Metacore-Signature": f"sha256={expected}",
    }


@pytest.mark.django_db(transaction=True)
def test_webhook_verify_and_replay_refused(installation, settings):
    settings.METACORE = {**settings.METACORE, "SECRET_MASTER_KEY": "k"}
    secret = issue_secret(installation)
    body = json.dumps({"event": "ping"}).encode()
    headers = webhooks.signed_headers(installation, "POST", "/webhook", body)
    webhooks.verify_request(secret, "POST", "/webhook", body, headers, scope="hooks")
    with pytest.raises(WebhookRejected, match="replayed"):
        webhooks.verify_request(secret, "POST", "/webhook", body, headers, scope="hooks")
    assert WebhookNonce.objects.filter(scope="hooks").count() == 1

    fresh = webhooks.signed_headers(installation, "POST", "/webhook", body)
    for kwargs, message in [
        (dict(body=b"{}"), "signature mismatch"),
        (dict(path="/other"), "signature mismatch"),
        (dict(secret="0" * 64), "signature mismatch"),
        (
            dict(headers={**fresh, "X-Metacore-Timestamp": str(int(time.time()) - 3600)}),
            "outside the allowed window",
        ),
        (dict(headers={k: v for k, v in fresh.items() if k != "X-Metacore-Nonce"}), "missing"),
        (dict(headers={**fresh, "X-Metacore-Timestamp": "soon"}), "not a unix timestamp"),
    ]:
        call = {
            "secret": secret,
            "method": "POST",
            "path": "/webhook",
            "body": body,
            "headers": fresh,
            **kwargs,
        }
        with pytest.raises(WebhookRejected, match=message):
            webhooks.verify_request(**call, scope="hooks")
    webhooks.verify_request(
        secret, "POST", "/webhook", body, fresh, scope="hooks"
    )  # untouched: still accepted once


@pytest.mark.django_db(transaction=True)
def test_expired_nonces_are_purged(installation):
    secret = issue_secret(installation)
    old = time.time() - 1000
    headers = webhooks.sign_request(secret, "GET", "/", b"", timestamp=old, nonce="old")
    webhooks.verify_request(secret, "GET", "/", b"", headers, scope="hooks", now=old)
    assert WebhookNonce.objects.filter(nonce="old").exists()
    webhooks.verify_request(
        secret, "GET", "/", b"", webhooks.sign_request(secret, "GET", "/", b""), scope="hooks"
    )
    assert not WebhookNonce.objects.filter(nonce="old").exists()


def test_system_check_reports_bad_trusted_keys(settings):
    from django.core.management import call_command as run
    from django.core.management.base import SystemCheckError

    settings.METACORE = {**settings.METACORE, "TRUSTED_KEYS": ["not a key"]}
    with pytest.raises(SystemCheckError, match="metacore.E020"):
        run("check")
