from metacore.context import CallContext
from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand


class Command(MetacoreCommand):
    help = "Upgrade an installed addon to a bundle in one transaction (see metacore_plan first)."

    def add_arguments(self, parser):
        parser.add_argument("bundle", help="bundle directory or .tar.gz file")
        parser.add_argument(
            "--allow-destructive", action="store_true", help="apply drops and narrowing changes"
        )
        parser.add_argument("--force", action="store_true", help="allow the same or a lower version")
        parser.add_argument(
            "--assign-organization",
            metavar="ORG",
            help="organization id for existing rows of tables that become organization-scoped",
        )
        self.add_format_argument(parser)

    def handle(self, *args, bundle, allow_destructive, force, assign_organization, **options):
        result = get_kernel().installer.upgrade(
            bundle,
            allow_destructive=allow_destructive,
            force=force,
            context=CallContext.system(),
            assign_organization=assign_organization,
        )
        self.report(
            options,
            f"{result.plan.as_text()}\nupgraded {result.installation.key} to {result.installation.version}",
            result.as_dict(),
            success=True,
        )
