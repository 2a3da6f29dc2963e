"""Which organization an admin request acts for.

A staff user acts for the organization `METACORE['TENANT_RESOLVER']` gives them, and
nothing else. A superuser acts for the organization they picked on the admin's
organization page (kept in the session), else for their own membership; with neither,
organization-scoped models list nothing rather than a mix of every tenant.
"""

import uuid

from metacore.conf import metacore_settings
from metacore.store.service import StoreContext

SESSION_KEY = "metacore_admin_organization"


def admin_context(request) -> StoreContext:
    user = request.user
    tenant = metacore_settings.TENANT_RESOLVER(user, request)
    if user.is_superuser and request.session.get(SESSION_KEY):
        tenant = request.session[SESSION_KEY]
    request_id = (request.META.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex)[:64]
    return StoreContext(
        user=user,
        tenant=str(tenant) if tenant else None,
        actor_id=str(user.pk) if user.pk is not None else None,
        request_id=request_id,
    )


def pick_organization(request, value: str | None) -> str | None:
    """Store a superuser's choice (a UUID, or empty to fall back to their membership)."""
    if not value:
        request.session.pop(SESSION_KEY, None)
        return None
    organization = str(uuid.UUID(value.strip()))  # ValueError for anything else
    request.session[SESSION_KEY] = organization
    return organization
