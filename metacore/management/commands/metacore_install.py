import json

from django.core.management.base import BaseCommand, CommandError

from metacore.kernel import get_kernel

from ._installer import as_command_errors, describe_install


class Command(BaseCommand):
    help = "Install an addon bundle (directory or .tar.gz) in one transaction."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz file")
        parser.add_argument("--settings-json", default=None, help="installation settings as a JSON object")

    def handle(self, *args, bundle, settings_json, **options):
        settings = None
        if settings_json:
            try:
                settings = json.loads(settings_json)
            except ValueError as exc:
                raise CommandError(f"--settings-json is not valid JSON: {exc}") from None
            if not isinstance(settings, dict):
                raise CommandError("--settings-json must be a JSON object")
        with as_command_errors(self):
            result = get_kernel().installer.install(bundle, actor="manage.py", settings=settings)
        self.stdout.write(self.style.SUCCESS(describe_install(result)))
