"""`manage.py metacore_call <addon> <export> --json '{...}'`: run one wasm export for an operator.

Prints the export's JSON result. Only exports the manifest lists in backend.exports are
callable; a bad addon, export, payload or a guest failure is a one-line error.
"""
import json

from django.core.management.base import BaseCommand, CommandError

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel


class Command(BaseCommand):
    help = "Call an installed addon's wasm export with a JSON payload and print its JSON result."

    def add_arguments(self, parser):
        parser.add_argument("addon", help="addon key")
        parser.add_argument("export", help="a wasm export listed in the manifest's backend.exports")
        parser.add_argument("--json", dest="payload", default="{}", help="the JSON input (default {})")
        parser.add_argument("--organization", "--tenant", dest="tenant", default=None,
                            help="organization id the call acts for (event_emit needs one); --tenant is the old spelling")

    def handle(self, *args, addon, export, payload, tenant, **options):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise CommandError(f"--json is not valid JSON: {exc}") from None
        try:
            result = get_kernel().sandbox.call(addon, export, data, {"tenant": tenant, "actor": "manage.py"})
        except MetacoreError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
