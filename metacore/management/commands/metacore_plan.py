from django.core.management.base import CommandError

from metacore.kernel import get_kernel
from metacore.management.base import EXIT_BLOCKED, MetacoreCommand


class Command(MetacoreCommand):
    help = (
        "Show the upgrade plan from the installed version to a bundle, in words and SQL, without "
        f"changing anything. Exits {EXIT_BLOCKED} when the plan is BLOCKED by the data."
    )

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz file")
        self.add_format_argument(parser)
        parser.add_argument(
            "--force", action="store_true", help="plan even if the version does not move forward"
        )
        parser.add_argument(
            "--assign-organization",
            metavar="ORG",
            help="organization id for existing rows of tables that become organization-scoped",
        )

    def handle(self, *args, bundle, format, force, assign_organization, **options):
        plan = get_kernel().installer.plan(bundle, force=force, assign_organization=assign_organization)
        if format == "json":
            self.write_json(plan.as_dict())
        else:
            self.stdout.write(plan.as_text())
        if plan.blocked:
            raise CommandError(
                f"the upgrade of {plan.key} is BLOCKED: {'; '.join(plan.blocked)}", returncode=EXIT_BLOCKED
            )
