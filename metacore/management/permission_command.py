"""Shared argument handling of `metacore_grant` and `metacore_revoke`."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from metacore.errors import MetacoreError
from metacore.kernel import get_kernel


class GrantCommand(BaseCommand):
    verb = ""  # "grant" | "revoke"

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--user", metavar="NAME", help="the user (username)")
        target.add_argument("--group", metavar="NAME", help="the group (role)")
        parser.add_argument(
            "names", nargs="+", metavar="ARG",
            help="without --user/--group: a user or group name first; then permission codenames "
                 "<addon>.<table>.<action> or <addon>.<table>.*",
        )

    def handle(self, *args, user=None, group=None, names=(), **options):
        names = list(names)
        if user is None and group is None:
            if len(names) < 2:
                raise CommandError("give a user or group and at least one permission")
            principal = self.principal_by_name(names.pop(0))
        elif user is not None:
            principal = self.user(user)
        else:
            principal = self.group(group)
        service = get_kernel().permissions
        try:
            codenames = getattr(service, self.verb)(principal, names)
        except MetacoreError as exc:
            raise CommandError(exc.message) from None
        kind = "group" if isinstance(principal, Group) else "user"
        done = "granted to" if self.verb == "grant" else "revoked from"
        self.stdout.write(f"{len(codenames)} permission(s) {done} {kind} {principal}: {', '.join(codenames)}")

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
            raise CommandError(f'unknown group "{name}"') from None

    def principal_by_name(self, name):
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: name}).first()
        group = Group.objects.filter(name=name).first()
        if user and group:
            raise CommandError(f'"{name}" is both a user and a group: use --user or --group')
        if not (user or group):
            raise CommandError(f'unknown user or group "{name}"')
        return user or group
