"""`manage.py metacore_keygen <private-key-file>`: a new ed25519 key pair for signing bundles."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import CommandError

from metacore.installer.signing import key_id, private_key_pem, public_key_text
from metacore.management.base import MetacoreCommand


class Command(MetacoreCommand):
    help = (
        "Create an ed25519 signing key (PEM, mode 0600) and print the public key to add to "
        "METACORE['TRUSTED_KEYS']."
    )

    def add_arguments(self, parser):
        parser.add_argument("key_file", help="where to write the private key (must not exist)")

    def handle(self, key_file, **options):
        path = Path(key_file)
        if path.exists():
            raise CommandError(f"{path} already exists; refusing to overwrite a key")
        private_key = Ed25519PrivateKey.generate()
        try:
            path.touch(mode=0o600)
            path.write_bytes(private_key_pem(private_key))
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc
        public = public_key_text(private_key.public_key())
        path.with_name(path.name + ".pub").write_text(public + "\n")
        self.stdout.write(
            f"private key: {path}\npublic key ({path}.pub, key_id {key_id(private_key.public_key())}):"
        )
        self.stdout.write(public)
