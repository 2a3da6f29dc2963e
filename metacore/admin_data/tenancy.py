"""Which organization an admin request acts for.

A staff user acts for the organization `METACORE['TENANT_RESOLVER']` gives them, and
nothing else. A superuser acts for the organization they picked on the admin's
organization page (kept in the session), else for their own membership; with neither,
organization-scoped models list nothing rather than a mix of every tenant.
"""

import uuid

from metacore.context import CallContext

SESSION_KEY = "metacore_admin_organization"


def admin_context(request) -> CallContext:
    user = request.user
    picked = request.session.get(SESSION_KEY) if user.is_superuser else None
    return CallContext.from_request(request, tenant=picked or None)


def pick_organization(request, value: str | None) -> str | None:
    """Store a superuser's choice (a UUID, or empty to fall back to their membership)."""
    if not value:
        request.session.pop(SESSION_KEY, None)
        return None
    organization = str(uuid.UUID(value.strip()))  # ValueError for anything else
    request.session[SESSION_KEY] = organization
    return organization
