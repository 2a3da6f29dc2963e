"""The access revision: what lets a process keep who-may-do-what in memory between requests.

A token-authenticated request would otherwise read the token and its user, the user's
tenant membership and the user's permissions (own and through groups) on every request.
`RegistryState.access_revision` moves forward in the same transaction as any change to those
rows (receivers below), so `AccessCache` answers from memory while the number it read is the
stored one, and every process sees a revoked grant, a removed membership, a deactivated user
or a deleted token on its next request (one primary-key read).

Changes that bypass model signals (`QuerySet.update()` of users, raw SQL) do not move it:
call `bump_access_revision()` after them.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Hashable
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS
from django.db.models import F, Model, Value
from django.db.models.functions import Greatest
from django.db.models.signals import m2m_changed, post_delete, post_save

from metacore.schema.registry import read_revisions, request_revisions


def read_access_revision(using: str = DEFAULT_DB_ALIAS) -> int:
    """The stored access revision (one primary-key read per request), read with the
    registry's, which `one_revision_read` keeps for the rest of the request."""
    registry, access = read_revisions(using)
    held = request_revisions()
    if held is not None:
        held.setdefault(using, registry)
    return access


def bump_access_revision(using: str = DEFAULT_DB_ALIAS) -> None:
    """Move the access revision forward, inside the caller's transaction. Seeded from the
    clock (as the registry revision is) so a number is never reused after the table is emptied."""
    from metacore.models import RegistryState

    now = time.time_ns() // 1000
    RegistryState.objects.using(using).get_or_create(pk=1)
    RegistryState.objects.using(using).filter(pk=1).update(
        access_revision=Greatest(F("access_revision") + 1, Value(now))
    )


class AccessCache:
    """Per-process answers (a user with its tenant and permissions) by credential, valid for
    one access revision: a new revision empties it. Bounded: the oldest entry goes first."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._entries: dict[Hashable, Any] = {}

    def get(self, key: Hashable, revision: int) -> Any:
        with self._lock:
            if revision != self._revision:
                self._entries.clear()
                self._revision = revision
                return None
            return self._entries.get(key)

    def put(self, key: Hashable, revision: int, value: Any) -> None:
        with self._lock:
            if revision != self._revision:
                return  # read under an older revision than the cache now holds
            if len(self._entries) >= self.size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._revision = None


def fresh_copy(instance: Any) -> Any:
    """A copy of a cached model instance for one request: its own `_state` and related-object
    cache (Model.__getstate__ copies them), so what one request caches on it stays there."""
    return copy.copy(instance)


def _bump(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # fixtures being loaded
    if kwargs.get("update_fields") == frozenset({"last_login"}):
        return  # every session login saves it; nothing a request's access depends on
    bump_access_revision(using)


def _bump_m2m(sender: Any, action: str, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        bump_access_revision(using)


def connect_receivers() -> None:
    """Bump on every change to what authentication and authorization read."""
    from metacore.models import TenantMembership

    user_model = get_user_model()
    saved: list[type[Model]] = [user_model, Group, Permission, TenantMembership]
    deleted = list(saved)
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authtoken.models import Token

        deleted.append(Token)
    for model in saved:
        post_save.connect(_bump, sender=model, dispatch_uid=f"metacore.access.save.{model._meta.label}")
    for model in deleted:
        post_delete.connect(_bump, sender=model, dispatch_uid=f"metacore.access.delete.{model._meta.label}")
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(
            _bump_m2m, sender=through, dispatch_uid=f"metacore.access.m2m.{through._meta.label}"
        )
