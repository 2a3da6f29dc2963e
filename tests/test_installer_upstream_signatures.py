"""The upstream kernel's bundle signatures (`security/signature.go`): ed25519 over the SHA-256
of the raw .tar.gz, hex-encoded, keys as upstream's MARKETPLACE_PUBKEY(S) hex; carried beside
the archive as `<archive>.sig`. The archives here are built the way upstream's publisher does
(tarfile + gzip, an own top-level layout), not by metacore's signer."""

import hashlib
import io
import json
import tarfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from metacore.errors import InvalidInput
from metacore.installer.signing import Ed25519PrivateKey, _raw_public
from metacore.kernel import get_kernel
from metacore.models import Installation
from tests.management_bundles import helpdesk_manifest, write_source

pytestmark = pytest.mark.django_db(transaction=True)
FILES = {
    "manifest.json": json.dumps(helpdesk_manifest()).encode(),
    "README.md": b"# Helpdesk\n",
    "frontend/remoteEntry.js": b"export const plugin = 1;\n",
}


def upstream_archive(files=FILES) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upstream_signature(archive: bytes, key, *, checksums=True) -> dict:
    digest = hashlib.sha256(archive).digest()
    block = {
        "developer_id": "dev-1",
        "developer_name": "Dev",
        "verified": True,
        "signed_at": "2026-01-01T00:00:00Z",
        "algorithm": "ed25519",
        "digest": digest.hex(),
        "value": key.sign(digest).hex(),
    }
    if checksums:
        block["checksums"] = {
            n: hashlib.sha256(d).hexdigest() for n, d in FILES.items() if n != "manifest.json"
        }
    return block


@pytest.fixture
def key(settings):
    private = Ed25519PrivateKey.generate()
    settings.METACORE = {
        **settings.METACORE,
        "ALLOW_UNSIGNED_BUNDLES": False,
        "TRUSTED_KEYS": [_raw_public(private.public_key()).hex()],
    }  # MARKETPLACE_PUBKEY form
    return private


def publish(tmp_path, archive: bytes, signature: dict | None):
    path = tmp_path / "helpdesk-1.0.0.tar.gz"
    path.write_bytes(archive)
    if signature is not None:
        (tmp_path / "helpdesk-1.0.0.tar.gz.sig").write_text(json.dumps(signature))
    return path


def install(path):
    result = get_kernel().installer.install(path)
    get_kernel().installer.uninstall(result.key, drop_data=True)
    return result


@pytest.mark.parametrize("checksums", [True, False])
def test_an_upstream_signed_bundle_installs_when_its_key_is_trusted(tmp_path, key, checksums):
    archive = upstream_archive()
    assert (
        install(publish(tmp_path, archive, upstream_signature(archive, key, checksums=checksums))).key
        == "helpdesk"
    )


def tampered_cases(key):
    archive = upstream_archive()
    good = upstream_signature(archive, key)
    changed = upstream_archive({**FILES, "README.md": b"# Pwned\n"})
    other = Ed25519PrivateKey.generate()
    yield "archive changed", changed, {**good, "digest": ""}, "does not verify"
    yield "digest drift", changed, good, "digest mismatch"
    yield "untrusted key", archive, upstream_signature(archive, other), "does not verify"
    yield (
        "checksum drift",
        archive,
        {**good, "checksums": {**good["checksums"], "README.md": "0" * 64}},
        "checksum mismatch",
    )
    yield (
        "undeclared entry",
        archive,
        {**good, "checksums": {"README.md": good["checksums"]["README.md"]}},
        "undeclared",
    )
    yield (
        "declared entry missing",
        archive,
        {**good, "checksums": {**good["checksums"], "docs/extra.md": "0" * 64}},
        "declared file(s) missing: docs/extra.md",
    )
    yield "checksums not strings", archive, {**good, "checksums": {"README.md": 1}}, '"checksums" must map'
    yield "not hex", archive, {**good, "value": "zz"}, "not hex"
    yield "other algorithm", archive, {**good, "algorithm": "rsa"}, "unsupported algorithm"


def test_a_tampered_or_foreign_bundle_is_refused(tmp_path, key):
    for name, archive, signature, words in tampered_cases(key):
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        with pytest.raises(InvalidInput) as caught:
            install(publish(folder, archive, signature))
        assert words in caught.value.message, (name, caught.value.message)
    assert not Installation.objects.filter(key="helpdesk").exists()


@pytest.mark.parametrize(
    ("text", "words"), [("{not json", "is not valid JSON"), ("[1, 2]", "must hold a JSON object")]
)
def test_an_unreadable_detached_signature_is_refused(tmp_path, key, text, words):
    path = publish(tmp_path, upstream_archive(), None)
    (tmp_path / "helpdesk-1.0.0.tar.gz.sig").write_text(text)
    with pytest.raises(InvalidInput, match=words):
        install(path)
    assert not Installation.objects.filter(key="helpdesk").exists()


def test_unsigned_archives_are_still_refused(tmp_path, key):
    with pytest.raises(InvalidInput, match="not signed"):
        install(publish(tmp_path, upstream_archive(), None))


def test_metacore_sign_produces_either_format(tmp_path, key):
    key_file = tmp_path / "k.pem"
    from metacore.installer.signing import private_key_pem

    key_file.write_bytes(private_key_pem(key))
    source = write_source(tmp_path / "src")
    call_command(
        "metacore_sign",
        str(source),
        "--key",
        str(key_file),
        "--signature",
        "upstream",
        "--out",
        str(tmp_path / "up.tar.gz"),
        stdout=io.StringIO(),
    )
    signature = json.loads((tmp_path / "up.tar.gz.sig").read_text())
    assert signature["digest"] == hashlib.sha256((tmp_path / "up.tar.gz").read_bytes()).hexdigest()
    assert install(tmp_path / "up.tar.gz").key == "helpdesk"
    # An existing archive (upstream's own) is signed byte for byte, in place.
    theirs = tmp_path / "theirs" / "helpdesk.tar.gz"
    theirs.parent.mkdir()
    original = upstream_archive()
    theirs.write_bytes(original)
    call_command(
        "metacore_sign", str(theirs), "--key", str(key_file), "--signature", "upstream", stdout=io.StringIO()
    )
    assert theirs.read_bytes() == original and (theirs.parent / "helpdesk.tar.gz.sig").is_file()
    assert install(theirs).key == "helpdesk"
    call_command(
        "metacore_sign",
        str(source),
        "--key",
        str(key_file),
        "--out",
        str(tmp_path / "mc.tar.gz"),
        stdout=io.StringIO(),
    )
    assert install(tmp_path / "mc.tar.gz").key == "helpdesk"
    with pytest.raises(CommandError):
        call_command("metacore_sign", str(source), "--key", str(key_file), "--signature", "gpg")
