import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from metacore.management.base import MetacoreCommand
from metacore.models import TenantMembership


class Command(MetacoreCommand):
    help = (
        "Show or set the organization (tenant) a user acts for, as read by the default "
        "TENANT_RESOLVER. Without --organization a new organization id is made."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        self.add_organization_argument(parser, "organization id (UUID) to join")
        self.add_format_argument(parser)

    def handle(self, *args, username, organization, **options):
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        try:
            org = uuid.UUID(organization) if organization else None
        except ValueError:
            raise CommandError(f"--organization {organization!r} is not a UUID") from None
        membership, _ = TenantMembership.objects.get_or_create(
            user=user, defaults={"organization_id": org or uuid.uuid4()}
        )
        if org and membership.organization_id != org:
            membership.organization_id = org
            membership.save(update_fields=["organization_id"])
        self.report(
            options,
            f"{username} acts for organization {membership.organization_id}",
            {"user": username, "organization": str(membership.organization_id)},
        )
