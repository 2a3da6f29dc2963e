"""`manage.py metacore_sign <bundle> --key <file> [--out PATH]`: write a signed .tar.gz."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from metacore.errors import MetacoreError
from metacore.installer.signing import key_id, load_private_key, sign_bundle


class Command(BaseCommand):
    help = "Sign an addon bundle (directory or .tar.gz) with an ed25519 key; see docs/bundles.md."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz")
        parser.add_argument("--key", required=True, help="private key file (PEM or 32-byte seed as hex/base64)")
        parser.add_argument("--out", help="output path (default: <bundle>-signed.tar.gz next to the bundle)")

    def handle(self, bundle, key, out=None, **options):
        source = Path(bundle)
        if not source.exists():
            raise CommandError(f"{source}: no such bundle")
        try:
            private_key = load_private_key(Path(key).read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read key {key}: {exc}") from exc
        except ValueError as exc:
            raise CommandError(f"{key}: {exc}") from exc
        try:
            signed = sign_bundle(source, private_key)
        except MetacoreError as exc:
            raise CommandError(exc.message) from exc
        stem = source.name.removesuffix(".tar.gz").removesuffix(".tgz").rstrip("/")
        target = Path(out) if out else source.parent / f"{stem}-signed.tar.gz"
        try:
            target.write_bytes(signed)
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc}") from exc
        self.stdout.write(f"signed {source} with key_id {key_id(private_key.public_key())} -> {target}")
