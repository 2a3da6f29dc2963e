from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand


class Command(MetacoreCommand):
    help = "Serve an installed addon again."

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")

    def handle(self, *args, key, **options):
        installation = get_kernel().installer.enable(key, actor="manage.py")
        self.stdout.write(self.style.SUCCESS(f"{installation.key} {installation.version} is {installation.state}"))
