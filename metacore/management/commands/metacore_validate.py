import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from metacore.installer.bundle import template_key

from metacore.errors import MetacoreError
from metacore.manifest.errors import ManifestError
from metacore.manifest.files import read_manifest_bytes
from metacore.manifest.parse import load_manifest


class Command(BaseCommand):
    help = (
        "Validate an addon manifest (bundle directory, manifest.json or .tar.gz): print the "
        "normalised manifest as JSON, or every problem one per line (exit code 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory, manifest.json, or .tar.gz bundle")
        parser.add_argument(
            "--set", dest="template_values", action="append", default=[], metavar="NAME=VALUE",
            help="value for a {{NAME}} template placeholder (default ADDON_KEY: from the bundle's "
                 "name, as metacore_install derives it)",
        )
        parser.add_argument("--quiet", action="store_true", help="print nothing when the manifest is valid")

    def handle(self, *args, bundle, template_values, quiet, **options):
        values = {}
        for item in template_values:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CommandError(f"--set expects NAME=VALUE, got {item!r}")
            values[name] = value
        source = Path(bundle)
        values.setdefault("ADDON_KEY", template_key(source.parent if source.name == "manifest.json" else source))
        try:
            manifest = load_manifest(read_manifest_bytes(bundle), template_values=values)
        except ManifestError as exc:
            for line in exc.problems:
                self.stderr.write(line)
            raise CommandError(f"{bundle}: invalid manifest ({len(exc.problems)} problem"
                               f"{'s' if len(exc.problems) != 1 else ''})", returncode=1) from None
        except MetacoreError as exc:
            raise CommandError(exc.message, returncode=1) from None
        for line in manifest.warnings:
            self.stderr.write(f"warning: {line}")
        if not quiet:
            self.stdout.write(json.dumps(manifest.model_dump(mode="json", exclude={"raw"}), indent=2, ensure_ascii=False))
