"""User-level permission service: may this user read/create/update/delete an addon model?

Permissions are Django `auth.Permission` rows on the `metacore.Installation` content type
(codenames from `naming.py`), so the host's authentication backends answer: the user's own
grants, their groups (roles), superusers. Object-level grants come from django-guardian
(see `metacore.permissions.guardian`).

Cost: `effective()` asks `user.get_all_permissions()`, which Django's ModelBackend caches on
the user object (`_perm_cache`); DRF keeps one user object per request, so a request pays a
fixed number of permission queries however many rows or checks it makes. Object checks use
one guardian `ObjectPermissionChecker` cached on the same user object.

Host models (`metacore.register_model`) have no rows of their own: `host.<key>.<action>` is
answered by the model's Django permission (`<app>.view_<model>`...), so what the host
already grants, and guardian's object permissions on its rows, apply as they are.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeGuard

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser, AnonymousUser, Group, Permission
from django.db.models import Model, Q, QuerySet

from metacore import errors
from metacore.context import user_actor
from metacore.permissions.naming import APP_LABEL

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import ManyRelatedManager
    from guardian.core import ObjectPermissionChecker

    from metacore.audit.pipe import AuditPipe
    from metacore.schema.registry import ModelRegistry

#: Who asks: the host's user model (with Django's permission fields) or the anonymous user.
User = AbstractUser | AnonymousUser

_EFFECTIVE_CACHE = "_metacore_effective_perms"
_CHECKER_CACHE = "_metacore_object_checker"


def _authenticated(user: User | AbstractBaseUser | None) -> TypeGuard[AbstractUser]:
    return user is not None and bool(getattr(user, "is_authenticated", False))


def _is_addon_codename(codename: str) -> bool:
    # Addon permissions always carry `<addon>.` ; Django's own `add_installation` etc. never do.
    return "." in codename


class PermissionService:
    def __init__(self, registry: ModelRegistry, audit: AuditPipe) -> None:
        self.registry = registry
        self.audit = audit

    def effective(self, user: User | None) -> set[str]:
        """Addon permission codenames the user holds globally (own grants + groups)."""
        if not _authenticated(user) or not getattr(user, "is_active", True):
            return set()
        cached: set[str] | None = getattr(user, _EFFECTIVE_CACHE, None)
        if cached is not None:
            return cached
        hosted = self._host_permissions()
        if user.is_superuser:
            codenames = Permission.objects.filter(content_type__app_label=APP_LABEL).values_list(
                "codename", flat=True
            )
            result = {c for c in codenames if _is_addon_codename(c)} | set(hosted)
        else:
            prefix = f"{APP_LABEL}."
            held = user.get_all_permissions()
            result = {
                perm[len(prefix) :]
                for perm in held
                if perm.startswith(prefix) and _is_addon_codename(perm[len(prefix) :])
            }
            result |= {codename for codename, perm in hosted.items() if perm in held}
        setattr(user, _EFFECTIVE_CACHE, result)
        return result

    def remember(self, user: User, codenames: Iterable[str]) -> None:
        """Give this user object the permissions `effective()` answered for it earlier (a
        cache that knows they are still current: metacore.api.authentication)."""
        setattr(user, _EFFECTIVE_CACHE, set(codenames))

    def has(self, user: User | None, codename: str, obj: Model | None = None) -> bool:
        """True when the user holds `codename` globally, or on `obj` through guardian."""
        if not _authenticated(user) or not getattr(user, "is_active", True):
            return False
        if user.is_superuser or codename in self.effective(user):
            return True
        if obj is None:
            return False
        perm = self._host_permissions().get(codename, f"{APP_LABEL}.{codename}")
        return self._object_checker(user).has_perm(perm, obj)

    def _host_permissions(self) -> dict[str, str]:
        """`host.<key>.<action>` -> the host model's Django permission."""
        permissions: dict[str, str] = self.registry.hosted.permissions()
        return permissions

    def require(self, user: User | None, codename: str, obj: Model | None = None) -> None:
        """Raise NotAuthenticated (401) for anonymous callers, Forbidden (403) when the
        permission is missing; denials are audited as `permission.check`."""
        if not _authenticated(user):
            raise errors.NotAuthenticated("Authentication credentials were not provided.")
        if self.has(user, codename, obj):
            return
        reason = f'permission denied: missing "{codename}"'
        self.audit.record(
            "permission.check",
            actor=user_actor(user),
            tenant=self._tenant(user),
            addon=codename.split(".", 1)[0],
            target=codename,
            decision="deny",
            reason=reason,
            details={"object": str(obj.pk)} if obj is not None else {},
        )
        raise errors.Forbidden(reason)

    # -- grants (management commands, admin tooling) -------------------------------------------
    def addon_permissions(self) -> QuerySet[Permission]:
        """Every addon permission row (the installer creates them at install)."""
        return Permission.objects.filter(content_type__app_label=APP_LABEL, codename__contains=".")

    def resolve_names(self, names: Iterable[str]) -> dict[str, Permission]:
        """Codename -> permission row, for codenames `<addon>.<table>.<action>` or
        `<addon>.<table>.*` (`*` alone as the last part: every permission under that prefix);
        a host model's `host.<key>.<action>` is its Django permission's row. Unknown names
        raise NotFound naming them and the closest known codenames."""
        known = {p.codename: p for p in self.addon_permissions().select_related("content_type")}
        known.update(self._host_permission_rows())
        found: dict[str, Permission] = {}
        unknown: list[str] = []
        for name in names:
            if name.endswith(".*") and name.count(".") >= 2:
                prefix = name[:-1]
                matches = {codename: p for codename, p in known.items() if codename.startswith(prefix)}
            else:
                matches = {name: known[name]} if name in known else {}
            if not matches:
                unknown.append(name)
            found.update(matches)
        if unknown:
            hints = dict.fromkeys(
                c for name in unknown for c in difflib.get_close_matches(name.rstrip(".*"), known, n=3)
            )
            hint = f" (did you mean: {', '.join(hints)}?)" if hints else ""
            raise errors.NotFound(f"unknown permission: {', '.join(unknown)}{hint}")
        return {c: found[c] for c in sorted(found)}

    def grant(self, principal: AbstractUser | Group, names: Iterable[str]) -> list[str]:
        """Grant permissions to a user or a Group (role); returns the codenames newly granted
        (ones already held directly are not counted again). A user object loaded before
        keeps the permissions cached on it: load the user again to check them (Django's
        permission caching)."""
        perms = self.resolve_names(names)
        held = self._held(principal, perms)
        added = {c: p for c, p in perms.items() if p.pk not in held}
        self._permission_set(principal).add(*added.values())
        return list(added)

    def revoke(self, principal: AbstractUser | Group, names: Iterable[str]) -> list[str]:
        """Revoke direct grants from a user or a Group; returns the codenames actually removed.
        A user keeps what their groups grant."""
        perms = self.resolve_names(names)
        held = self._held(principal, perms)
        removed = {c: p for c, p in perms.items() if p.pk in held}
        self._permission_set(principal).remove(*removed.values())
        return list(removed)

    def _held(self, principal: AbstractUser | Group, perms: dict[str, Permission]) -> set[int]:
        """Primary keys of `perms` the principal holds directly."""
        pks = [p.pk for p in perms.values()]
        return set(self._permission_set(principal).filter(pk__in=pks).values_list("pk", flat=True))

    def _host_permission_rows(self) -> dict[str, Permission]:
        """`host.<key>.<action>` -> the row of the Django permission it stands for (when the
        host's migrations created it)."""
        wanted = self._host_permissions()
        if not wanted:
            return {}
        match = Q()
        for perm in wanted.values():
            app_label, codename = perm.split(".", 1)
            match |= Q(content_type__app_label=app_label, codename=codename)
        rows = {
            f"{p.content_type.app_label}.{p.codename}": p
            for p in Permission.objects.filter(match).select_related("content_type")
        }
        return {name: rows[perm] for name, perm in wanted.items() if perm in rows}

    def grants(self, principal: AbstractUser | Group) -> list[tuple[str, str]]:
        """(codename, source) of every addon permission a user or group holds: source is
        `direct` or `group:<name>` (a user's groups); sorted by codename."""
        rows = [
            (c, "direct")
            for c in self._permission_set(principal)
            .filter(content_type__app_label=APP_LABEL, codename__contains=".")
            .values_list("codename", flat=True)
        ]
        if not isinstance(principal, Group):
            rows += [
                (c, f"group:{g}")
                for c, g in Permission.objects.filter(
                    content_type__app_label=APP_LABEL,
                    codename__contains=".",
                    group__user=principal,  # type: ignore[misc]  # the host's user model, typed as AbstractUser
                ).values_list("codename", "group__name")
            ]
        hosted = {p.pk: name for name, p in self._host_permission_rows().items()}
        if hosted:
            rows += [
                (hosted[pk], "direct")
                for pk in self._permission_set(principal).filter(pk__in=hosted).values_list("pk", flat=True)
            ]
            if not isinstance(principal, Group):
                rows += [
                    (hosted[pk], f"group:{g}")
                    for pk, g in Permission.objects.filter(
                        pk__in=hosted,
                        group__user=principal,  # type: ignore[misc]  # the host's user model, typed as AbstractUser
                    ).values_list("pk", "group__name")
                ]
        return sorted(rows)

    @staticmethod
    def _permission_set(principal: AbstractUser | Group) -> ManyRelatedManager[Permission, Any]:
        return principal.permissions if isinstance(principal, Group) else principal.user_permissions

    def _object_checker(self, user: AbstractUser) -> ObjectPermissionChecker:
        from guardian.core import ObjectPermissionChecker

        checker = getattr(user, _CHECKER_CACHE, None)
        if checker is None:
            checker = ObjectPermissionChecker(user)
            setattr(user, _CHECKER_CACHE, checker)
        return checker

    @staticmethod
    def _tenant(user: AbstractUser) -> str:
        from metacore.conf import metacore_settings

        try:
            return metacore_settings.TENANT_RESOLVER(user, None) or ""
        except Exception:  # the audit line must never turn a 403 into a 500
            return ""
