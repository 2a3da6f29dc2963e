from django.core.management.base import BaseCommand

from metacore.kernel import get_kernel

from ._installer import as_command_errors


class Command(BaseCommand):
    help = "Serve an installed addon again."

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")

    def handle(self, *args, key, **options):
        with as_command_errors(self):
            installation = get_kernel().installer.enable(key, actor="manage.py")
        self.stdout.write(self.style.SUCCESS(f"{installation.key} {installation.version} is {installation.state}"))
