from pathlib import Path

from django.core.management.base import CommandError

from metacore.conf import metacore_settings
from metacore.context import CallContext
from metacore.errors import MetacoreError, NotFound
from metacore.installer.bundle import MANIFEST_NAME, open_bundle
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand

from ._installer import describe_install

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def bundle_paths(directory: Path) -> list[Path]:
    """Bundles directly inside `directory`: folders with a manifest.json, and archives."""
    return sorted(
        p
        for p in directory.iterdir()
        if (p.is_dir() and (p / MANIFEST_NAME).is_file())
        or (p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
    )


class Command(MetacoreCommand):
    help = (
        "Install every bundle in METACORE['BUNDLE_DIR'] (or the given directory), skipping "
        "addons already installed at that version. Used by `make run`."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", help="default: METACORE['BUNDLE_DIR']")
        parser.add_argument(
            "--strict", action="store_true", help="exit non-zero when a bundle fails to install"
        )

    def handle(self, *args, directory, strict, **options):
        directory = directory or metacore_settings.BUNDLE_DIR
        if not directory:
            raise CommandError("no directory given and METACORE['BUNDLE_DIR'] is not set")
        directory = Path(directory)
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory")
        kernel = get_kernel()
        failures = 0
        for path in bundle_paths(directory):
            try:
                bundle = open_bundle(path)
                try:
                    current = kernel.registry.installed(bundle.manifest.key)
                except NotFound:
                    current = None
                if current is not None:
                    note = (
                        "already installed"
                        if current.version == bundle.manifest.version
                        else (f"{current.version} installed; upgrade with metacore_upgrade")
                    )
                    self.stdout.write(
                        f"{path.name}: {bundle.manifest.key} {bundle.manifest.version} skipped ({note})"
                    )
                    continue
                result = kernel.installer.install(bundle, context=CallContext.system())
            except MetacoreError as exc:
                failures += 1
                self.stderr.write(f"{path.name}: {exc.message}")
                continue
            self.stdout.write(self.style.SUCCESS(f"{path.name}: {describe_install(result)}"))
        if failures and strict:
            raise CommandError(f"{failures} bundle(s) failed to install")
