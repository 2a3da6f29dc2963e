"""`manage.py metacore_sign <bundle> --key <file> [--out PATH] [--signature metacore|upstream]`.

`metacore` (default) writes a .tar.gz whose manifest carries the signature block;
`upstream` writes the archive plus `<archive>.sig`, the upstream kernel's detached signature
over the archive's SHA-256 (an existing .tar.gz is signed byte for byte)."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from metacore.installer.signing import (
    detached_signature_path,
    key_id,
    load_private_key,
    read_source,
    sign_bundle,
    sign_tarball,
    write_bundle,
)
from metacore.management.base import MetacoreCommand


class Command(MetacoreCommand):
    help = "Sign an addon bundle (directory or .tar.gz) with an ed25519 key; see docs/bundles.md."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz")
        parser.add_argument(
            "--key", required=True, help="private key file (PEM or 32-byte seed as hex/base64)"
        )
        parser.add_argument(
            "--out", help="output archive (default: <bundle>-signed.tar.gz next to the bundle)"
        )
        parser.add_argument(
            "--signature",
            dest="style",
            choices=("metacore", "upstream"),
            default="metacore",
            help="metacore: signature inside manifest.json; upstream: detached <archive>.sig "
            "over the archive's SHA-256",
        )

    def handle(self, bundle, key, out=None, style="metacore", **options):
        source = Path(bundle)
        if not source.exists():
            raise CommandError(f"{source}: no such bundle")
        try:
            private_key = load_private_key(Path(key).read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read key {key}: {exc}") from exc
        except ValueError as exc:
            raise CommandError(f"{key}: {exc}") from exc
        stem = source.name.removesuffix(".tar.gz").removesuffix(".tgz").rstrip("/")
        if style == "upstream":  # a MetacoreError becomes a CommandError in MetacoreCommand
            manifest, contents = read_source(source)
            archive = (
                source.read_bytes()
                if source.is_file()
                else write_bundle({k: v for k, v in manifest.items() if k != "signature"}, contents)
            )
            signature = sign_tarball(archive, private_key, contents)
            default = source if source.is_file() else source.parent / f"{stem}.tar.gz"
        else:
            archive, signature = sign_bundle(source, private_key), None
            default = source.parent / f"{stem}-signed.tar.gz"
        target = Path(out) if out else default
        try:
            if not (target.exists() and target.samefile(source)):
                target.write_bytes(archive)
            if signature is not None:
                detached_signature_path(target).write_text(json.dumps(signature, indent=2) + "\n")
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc}") from exc
        extra = f" + {detached_signature_path(target).name}" if signature is not None else ""
        self.stdout.write(
            f"signed {source} with key_id {key_id(private_key.public_key())} -> {target}{extra}"
        )
