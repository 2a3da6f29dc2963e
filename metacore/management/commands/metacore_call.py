"""`manage.py metacore_call <addon> <export> --data '{...}' [--organization ID]`: run one wasm
export for an operator.

Prints the export's JSON result. Only exports the manifest lists in backend.exports are
callable; a bad addon, export, payload or a guest failure is a one-line error, and so is a
result the guest itself marks `{"success": false}` (printed first; exit code 1).
"""

import argparse
import json

from django.core.management.base import CommandError

from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.management.base import DeprecatedAlias, MetacoreCommand


class Command(MetacoreCommand):
    help = "Call an installed addon's wasm export with a JSON payload and print its JSON result."

    def add_arguments(self, parser):
        parser.add_argument("addon", help="addon key")
        parser.add_argument("export", help="a wasm export listed in the manifest's backend.exports")
        parser.add_argument(
            "--data", dest="payload", default="{}", metavar="JSON", help="the JSON input (default {})"
        )
        parser.add_argument(
            "--json", dest="payload", action=DeprecatedAlias, replacement="--data", help=argparse.SUPPRESS
        )
        self.add_organization_argument(
            parser, "organization id the call acts for (event_emit needs one)", legacy_tenant=True
        )

    def handle(self, *args, addon, export, payload, organization, **options):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from None
        result = get_kernel().sandbox.call(
            addon, export, data, CallContext.system("cli", tenant=organization)
        )
        self.write_json(result)
        if isinstance(result, dict) and result.get("success") is False:
            error = result.get("error")
            detail = error.get("message") or error.get("code") if isinstance(error, dict) else error
            raise CommandError(f"{addon} {export} answered success=false" + (f": {detail}" if detail else ""))
