import json

from django.core.management.base import BaseCommand

from metacore.kernel import get_kernel

from ._installer import as_command_errors


class Command(BaseCommand):
    help = "Show the upgrade plan from the installed version to a bundle, in words and SQL, without changing anything."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz file")
        parser.add_argument("--format", choices=["text", "json"], default="text")
        parser.add_argument("--force", action="store_true", help="plan even if the version does not move forward")
        parser.add_argument("--assign-organization", metavar="ORG",
                            help="organization id for existing rows of tables that become organization-scoped")

    def handle(self, *args, bundle, format, force, assign_organization, **options):
        with as_command_errors(self):
            plan = get_kernel().installer.plan(bundle, force=force, assign_organization=assign_organization)
        if format == "json":
            self.stdout.write(json.dumps(plan.as_dict(), indent=2))
        else:
            self.stdout.write(plan.as_text())
