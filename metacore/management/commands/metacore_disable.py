from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand

from ._installer import installation_data


class Command(MetacoreCommand):
    help = "Stop serving an addon; its data and permissions stay."

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")
        self.add_format_argument(parser)

    def handle(self, *args, key, **options):
        installation = get_kernel().installer.disable(key, actor="manage.py")
        self.report(
            options,
            f"{installation.key} {installation.version} is {installation.state}",
            installation_data(installation),
            success=True,
        )
