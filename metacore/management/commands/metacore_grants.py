from metacore.kernel import get_kernel
from metacore.management.permission_command import PrincipalCommand


class Command(PrincipalCommand):
    help = (
        "List the addon permissions a user holds (directly and through groups) or a group grants: "
        "`metacore_grants ann`, `metacore_grants --group agents`."
    )

    def add_arguments(self, parser):
        self.add_principal_arguments(parser)
        parser.add_argument("name", nargs="?", help="a user or group name (instead of --user/--group)")
        self.add_format_argument(parser)

    def handle(self, *args, user=None, group=None, name=None, format="text", **options):
        principal = self.principal(user, group, [name] if name else [])
        rows = get_kernel().permissions.grants(principal)
        if format == "json":
            self.write_json([{"permission": codename, "source": source} for codename, source in rows])
        elif not rows:
            self.stdout.write(f"{self.describe(principal)} holds no addon permissions")
        else:
            self.write_table(("PERMISSION", "SOURCE"), rows)
