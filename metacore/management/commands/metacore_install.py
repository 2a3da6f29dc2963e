import json

from django.core.management.base import CommandError

from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand

from ._installer import describe_install, install_data


class Command(MetacoreCommand):
    help = "Install an addon bundle (directory or .tar.gz) in one transaction."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz file")
        parser.add_argument("--settings-json", default=None, help="installation settings as a JSON object")
        self.add_organization_argument(
            parser, "install for this organization only (default: every organization)"
        )
        self.add_format_argument(parser)

    def handle(self, *args, bundle, settings_json, organization, **options):
        settings = None
        if settings_json:
            try:
                settings = json.loads(settings_json)
            except ValueError as exc:
                raise CommandError(f"--settings-json is not valid JSON: {exc}") from None
            if not isinstance(settings, dict):
                raise CommandError("--settings-json must be a JSON object")
        result = get_kernel().installer.install(
            bundle, context=CallContext.system(), settings=settings, organization=organization
        )
        self.report(options, describe_install(result), install_data(result), success=True)
