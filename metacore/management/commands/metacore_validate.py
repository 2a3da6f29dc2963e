from pathlib import Path

from django.core.management.base import CommandError

from metacore.installer.bundle import MANIFEST_NAME, template_key
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand
from metacore.manifest.errors import ManifestError
from metacore.manifest.files import read_manifest_bytes
from metacore.manifest.parse import load_manifest


class Command(MetacoreCommand):
    help = (
        "Validate an addon bundle (directory, manifest.json or .tar.gz) as this host would install it: "
        "the manifest, then the host's checks (signature when unsigned bundles are refused, kernel "
        "version, grantable capabilities). Exit code 1 on any problem, each printed on its own line."
    )

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory, manifest.json, or .tar.gz bundle")
        parser.add_argument(
            "--set",
            dest="template_values",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="value for a {{NAME}} template placeholder (default ADDON_KEY: from the bundle's "
            "name, as metacore_install derives it)",
        )
        parser.add_argument(
            "--manifest-only",
            action="store_true",
            help="check the manifest alone, not whether this host would accept the bundle",
        )
        parser.add_argument("--quiet", action="store_true", help="print nothing when the bundle is valid")
        self.add_format_argument(parser)

    def handle(self, *args, bundle, template_values, manifest_only, quiet, format, **options):
        values = {}
        for item in template_values:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CommandError(f"--set expects NAME=VALUE, got {item!r}")
            values[name] = value
        source = Path(bundle)
        root = source.parent if source.name == MANIFEST_NAME else source
        values.setdefault("ADDON_KEY", template_key(root))
        try:
            manifest = load_manifest(read_manifest_bytes(bundle), template_values=values)
        except ManifestError as exc:
            for line in exc.problems:
                self.stderr.write(line)
            raise CommandError(
                f"{bundle}: invalid manifest ({len(exc.problems)} problem"
                f"{'s' if len(exc.problems) != 1 else ''})"
            ) from None
        for line in manifest.warnings:
            self.stderr.write(f"warning: {line}")
        if not manifest_only:
            get_kernel().installer.preflight(root)
        if quiet:
            return
        if format == "json":
            self.write_json(manifest.model_dump(mode="json", exclude={"raw"}))
        else:
            checked = "manifest only" if manifest_only else "this host would install it"
            self.stdout.write(
                f"{manifest.key} {manifest.version}: valid ({len(manifest.models)} model(s), "
                f"{len(manifest.capabilities)} capability(ies); {checked})"
            )
