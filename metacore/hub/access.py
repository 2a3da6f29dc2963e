"""Who may receive what over the hub: plain synchronous Python over the kernel's services.

The consumer calls these through `database_sync_to_async`. Decisions:

- Data events: a subscription token (model key, table, `addon.Model`, case-insensitive) is
  resolved by the model registry; the user needs `<addon>.<table>.read` (permission
  service). `*` subscribes to every model the user may read, checked per model on its first
  event.
- Addon events (`addon.<key>.<event>`): the capability is the *emitting addon's*. An addon
  opens its events to its clients by declaring `event:subscribe` with a target matching the
  event name (`ticket.*`); the check goes through the enforcer (audited, shadow/enforce).
  The user needs no model permission, and the group is scoped to the user's tenant, so only
  the addon's events of that tenant arrive.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from metacore.conf import metacore_settings
from metacore.context import CallContext, user_actor
from metacore.errors import MetacoreError
from metacore.permissions.naming import model_permission

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.hub.fanout import Verdict
    from metacore.permissions.service import PermissionService
    from metacore.schema.registry import ModelRegistry
    from metacore.security.enforcer import Enforcer

ADDON_CHANNEL = re.compile(
    r"addon\.(?P<addon>[a-z][a-z0-9_]{0,63})\.(?P<event>[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127})"
)


@dataclass(frozen=True)
class ModelRef:
    addon: str
    model: str  # key as declared
    table: str
    org_scoped: bool = True

    @property
    def ident(self) -> tuple[str, str]:
        return (self.addon.lower(), self.table.lower())


class HubAccess:
    """One socket's decisions, for `user` of `tenant`."""

    def __init__(
        self,
        user: Any,
        tenant: str | None,
        *,
        permissions: PermissionService,
        registry: ModelRegistry,
        enforcer: Enforcer,
        audit: AuditPipe,
    ) -> None:
        self.permissions = permissions
        self.registry = registry
        self.enforcer = enforcer
        self.audit = audit
        self.user = user
        self.tenant = tenant

    @property
    def actor(self) -> str:
        return user_actor(self.user)

    def fresh(self) -> None:
        """Load the user again, so each SUBSCRIBE sees current grants: Django caches
        permissions on a user object and its documented answer is a fresh object. A user
        deleted since the connect is anonymous (may read nothing)."""
        self.user = get_user_model()._default_manager.filter(pk=self.user.pk).first() or AnonymousUser()

    def may_read(self, addon: str, table: str) -> bool:
        return self.permissions.has(self.user, model_permission(addon, table, "read"))

    def resolve_models(self, tokens: Iterable[str]) -> list[tuple[str, ModelRef | None, str]]:
        """[(token, ModelRef | None, reason)] for the tokens other than `*`."""
        out: list[tuple[str, ModelRef | None, str]] = []
        for token in tokens:
            try:
                resolved = self.registry.resolve(token, organization=self.tenant)
            except MetacoreError as exc:
                out.append((token, None, exc.message))
                continue
            ref = ModelRef(
                resolved.installation_key, resolved.spec.key, resolved.spec.table, resolved.spec.org_scoped
            )
            if ref.org_scoped and self.tenant is None:
                out.append((token, None, "no organization: org-scoped models need a tenant"))
            elif not self.may_read(ref.addon, ref.table):
                out.append(
                    (
                        token,
                        None,
                        f'permission denied: missing "{model_permission(ref.addon, ref.table, "read")}"',
                    )
                )
            else:
                out.append((token, ref, ""))
        return out

    def may_subscribe_channel(self, addon: str, event: str) -> tuple[bool, str]:
        """Enforcer gate for `addon.<key>.<event>` (see the module docstring)."""
        from metacore.errors import CapabilityDenied

        context = CallContext(user=self.user, actor=self.actor, tenant=self.tenant)
        try:
            decision = self.enforcer.check(addon, "event:subscribe", event, context, {"via": "hub"})
        except CapabilityDenied as exc:
            return False, exc.message
        return bool(decision), getattr(decision, "reason", "")

    def audit_subscribe(
        self, target: str, decision: str, reason: str = "", addon: str = "", **details: object
    ) -> None:
        self.audit.record(
            "hub.subscribe",
            actor=self.actor,
            tenant=self.tenant or "",
            addon=addon,
            target=target,
            decision=decision,
            reason=reason,
            details=details,
        )

    def audit_recheck(self, code: int, reason: str) -> None:
        self.audit.record(
            "hub.recheck",
            actor=self.actor,
            tenant=self.tenant or "",
            decision="deny",
            reason=reason,
            details={"close_code": code},
        )

    def audit_connect(self, decision: str, reason: str = "", **details: object) -> None:
        self.audit.record(
            "hub.connect",
            actor=self.actor,
            tenant=self.tenant or "",
            decision=decision,
            reason=reason,
            details=details,
        )


def verifier(
    permissions: PermissionService, user_pk: object, credential: tuple[str, Any]
) -> Callable[[], Verdict]:
    """The synchronous recheck of sockets opened with `credential` by user `user_pk` (see
    `metacore.hub.fanout.Principal`): the credential must still authenticate that user, who
    must be active; the verdict carries the tenant and the addon permissions held now."""
    from django.contrib.auth import get_user_model

    from metacore.hub.auth import session_user, token_user
    from metacore.hub.fanout import Verdict

    def verify() -> Verdict:
        kind, value = credential
        if kind == "token":
            user, reason = token_user(value)
        elif kind == "session":
            user, reason = session_user(value), "session ended"
        else:
            user, reason = get_user_model()._default_manager.filter(pk=value).first(), "user deleted"
        if user is None or user.pk != user_pk:
            return Verdict.failed(4401, reason)
        if not user.is_active:
            return Verdict.failed(4401, "user inactive")
        tenant = metacore_settings.TENANT_RESOLVER(user, None)
        return Verdict(
            user=user,
            tenant=None if tenant in (None, "") else str(tenant),
            superuser=bool(user.is_superuser),
            readable=frozenset(permissions.effective(user)),
        )

    return verify
