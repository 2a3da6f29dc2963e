from django.core.management.base import BaseCommand

from metacore.kernel import get_kernel

from ._installer import as_command_errors


class Command(BaseCommand):
    help = "Uninstall an addon. Its tables and rows are kept for a later reinstall unless --drop-data."

    def add_arguments(self, parser):
        parser.add_argument("key", help="addon key")
        parser.add_argument("--drop-data", action="store_true", help="drop the addon's tables, rows and permissions too")

    def handle(self, *args, key, drop_data, **options):
        with as_command_errors(self):
            installation = get_kernel().installer.uninstall(key, drop_data=drop_data, actor="manage.py")
        kept = "tables and rows dropped" if drop_data else "tables and rows kept"
        self.stdout.write(self.style.SUCCESS(f"uninstalled {installation.key} {installation.version} ({kept})"))
