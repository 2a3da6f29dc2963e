from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand

from ._installer import state_report


class Command(MetacoreCommand):
    help = "Stop serving an addon; its data and permissions stay."

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")
        self.add_organization_argument(
            parser, "disable it for this organization only (default: for everyone)"
        )
        self.add_format_argument(parser)

    def handle(self, *args, key, organization, **options):
        installation = get_kernel().installer.disable(
            key, context=CallContext.system(), organization=organization
        )
        self.report(options, *state_report(installation, organization), success=True)
