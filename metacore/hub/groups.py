"""Channel-layer group names of the hub.

Every data and addon-event group carries the tenant, taken from the server-side tenant
resolver and never from a client frame, so no subscription can reach another tenant's group.
Parts are reduced to Channels' allowed charset (`[A-Za-z0-9_.-]`, under 100 characters): a
part that is not a plain identifier is replaced by a digest, so crafted names can neither
collide with nor address another group. Dots only ever separate parts.
"""

import hashlib
import re

_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,40}")
SHARED = "_shared"  # tenant part for rows of tables that are not org-scoped
LIFECYCLE_GROUP = "mc.lifecycle"


def part(value) -> str:
    text = "" if value is None else str(value)
    if _PLAIN.fullmatch(text):
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:24]


def tenant_part(tenant) -> str:
    return SHARED if tenant in (None, "") else part(tenant)


def data_group(tenant, addon: str, table: str) -> str:
    """Events of one model of one tenant (or of a shared table when `tenant` is None)."""
    return f"mc.{tenant_part(tenant)}.d.{part(addon.lower())}.{part(table.lower())}"


def all_data_group(tenant) -> str:
    """Every data event of one tenant (what a `*` subscription joins)."""
    return f"mc.{tenant_part(tenant)}.d"


def addon_event_group(tenant, addon: str, event: str) -> str:
    return f"mc.{tenant_part(tenant)}.e.{part(addon)}.{part(event)}"


def user_group(user_pk) -> str:
    return f"mc.u.{part(user_pk)}"


def tenant_user_group(tenant, user_pk) -> str:
    """One user's sockets opened under one organization (what an addon may reach)."""
    return f"mc.{tenant_part(tenant)}.u.{part(user_pk)}"


def connection_group(connection_id) -> str:
    """One socket (a conditional send's target)."""
    return f"mc.c.{part(connection_id)}"
