"""CallContext: who a service call runs for, for which tenant, and where its records go.

One shape for every caller (API views, the admin, row actions, webhooks, schedules, tools,
management commands): the store, the sandbox and the action dispatcher take it, and every
audit record they write names `context.actor`.

`actor` has one meaning (docs/audit.md): the acting user's primary key as a string for a
user; otherwise the name of the system that acts — `cli` for management commands, `worker`,
`schedule:<id>`, `webhook:<id>`, `tool:<id>`; empty for an anonymous or unattributed call.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self

from django.db import DEFAULT_DB_ALIAS

from metacore.conf import metacore_settings

if TYPE_CHECKING:
    from django.http import HttpRequest

REQUEST_ID_HEADER = "HTTP_X_REQUEST_ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def user_actor(user: Any) -> str:
    """The audit actor of `user`: its primary key as a string ("" when it has none)."""
    pk = getattr(user, "pk", None)
    return "" if pk is None else str(pk)


def request_id_of(request: HttpRequest) -> str:
    """The request's id: the caller's `X-Request-ID` when it is 1..64 letters, digits, `.`,
    `_`, `-` (it goes into a response header and the audit trail), else a fresh one, kept on
    the request so every later reader (audit, error envelope, the middleware) sees the same."""
    given: str = request.META.get(REQUEST_ID_HEADER, "")
    if not _VALID_REQUEST_ID.fullmatch(given):
        given = request.META[REQUEST_ID_HEADER] = uuid.uuid4().hex
    return given


@dataclass(frozen=True)
class CallContext:
    """Who is acting (user, actor), for which organization (tenant, None: none), under which
    request id, on which database alias."""

    user: Any = None
    actor: str = ""
    tenant: str | None = None
    request_id: str = ""
    using: str = DEFAULT_DB_ALIAS

    @classmethod
    def for_user(
        cls,
        user: Any,
        request: HttpRequest | None = None,
        *,
        request_id: str = "",
        tenant: object = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> Self:
        """The context of `user`; its tenant, unless given, from `METACORE['TENANT_RESOLVER']`."""
        if tenant is None:
            tenant = metacore_settings.TENANT_RESOLVER(user, request)
        return cls(
            user=user,
            actor=user_actor(user),
            tenant=str(tenant) if tenant else None,
            request_id=request_id,
            using=using,
        )

    @classmethod
    def from_request(cls, request: HttpRequest, *, tenant: object = None) -> Self:
        """The context of an HTTP request: its user, their tenant (unless given) and request id."""
        return cls.for_user(
            getattr(request, "user", None), request, request_id=request_id_of(request), tenant=tenant
        )

    @classmethod
    def system(
        cls,
        actor: str = "cli",
        *,
        tenant: object = None,
        request_id: str = "",
        using: str = DEFAULT_DB_ALIAS,
    ) -> Self:
        """A call no user makes: `actor` names the system (`cli`, `worker`, `webhook:<id>`...)."""
        return cls(actor=actor, tenant=str(tenant) if tenant else None, request_id=request_id, using=using)

    def replace(self, **changes: Any) -> Self:
        """This context with some fields changed (it is frozen)."""
        return replace(self, **changes)
