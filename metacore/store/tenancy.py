"""Tenant resolution: which organization a request acts for.

`METACORE['TENANT_RESOLVER']` is a dotted path to `resolver(user, request) -> str | None`.
The default reads the user's `TenantMembership` (metacore.models); a host with its own
organization model points the setting at its own function.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest


def default_tenant_resolver(
    user: AbstractBaseUser | AnonymousUser | None, request: HttpRequest | None = None
) -> str | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    # A missing one-to-one raises RelatedObjectDoesNotExist, an AttributeError: getattr's default.
    membership = getattr(user, "metacore_membership", None)
    return str(membership.organization_id) if membership else None
