"""Shared argument handling of `metacore_grant`, `metacore_revoke` and `metacore_grants`."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandError

from metacore.kernel import get_kernel
from metacore.management.base import MetacoreCommand


class PrincipalCommand(MetacoreCommand):
    """A command about one user or group: `--user NAME`, `--group NAME`, or a bare name first."""

    def add_principal_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--user", metavar="NAME", help="the user (username)")
        target.add_argument("--group", metavar="NAME", help="the group (role)")

    def principal(self, user, group, names: list, *, create_group=False):
        """The user or group named by the options, or else by the first of `names` (popped)."""
        if user is not None:
            return self.user(user)
        if group is not None:
            if create_group:
                found, created = Group.objects.get_or_create(name=group)
                if created:
                    self.stdout.write(f"group {group} created")
                return found
            return self.group(group)
        if not names:
            raise CommandError("give a user or a group (--user NAME, --group NAME or a name)")
        return self.principal_by_name(names.pop(0))

    def user(self, name):
        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(name)
        except model.DoesNotExist:
            raise CommandError(f'unknown user "{name}"') from None

    def group(self, name):
        try:
            return Group.objects.get(name=name)
        except Group.DoesNotExist:
            raise CommandError(f'unknown group "{name}" (create it with --create-group)') from None

    def principal_by_name(self, name):
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
        group = Group.objects.filter(name=name).first()
        if user and group:
            raise CommandError(f'"{name}" is both a user and a group: use --user or --group')
        if not (user or group):
            raise CommandError(f'unknown user or group "{name}"')
        return user or group

    @staticmethod
    def describe(principal) -> str:
        return f"{'group' if isinstance(principal, Group) else 'user'} {principal}"


class GrantCommand(PrincipalCommand):
    verb = ""  # "grant" | "revoke"

    def add_arguments(self, parser):
        self.add_principal_arguments(parser)
        if self.verb == "grant":
            parser.add_argument(
                "--create-group",
                action="store_true",
                help="with --group: create the group when it does not exist",
            )
        parser.add_argument(
            "names",
            nargs="+",
            metavar="ARG",
            help="without --user/--group: a user or group name first; then permission codenames "
            "<addon>.<table>.<action> or <addon>.<table>.*",
        )

    def handle(self, *args, user=None, group=None, names=(), create_group=False, **options):
        names = list(names)
        if user is None and group is None and len(names) < 2:
            raise CommandError("give a user or group and at least one permission")
        principal = self.principal(user, group, names, create_group=create_group)
        codenames = getattr(get_kernel().permissions, self.verb)(principal, names)
        done = "granted to" if self.verb == "grant" else "revoked from"
        unchanged = "already held" if self.verb == "grant" else "not held"
        line = f"{len(codenames)} permission(s) {done} {self.describe(principal)}"
        self.stdout.write(line + (f": {', '.join(codenames)}" if codenames else f" (all {unchanged})"))
