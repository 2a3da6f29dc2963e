"""Token and JWT authentication answered from memory.

Each process keeps, per credential, the user with its tenant membership and addon permissions
(`metacore.permissions.access.AccessCache`), valid while the stored access revision is the
one it read: a request costs one primary-key read instead of the user (and token), membership
and permission queries, and a revoked grant, a moved membership, a deactivated user, a changed
password or a deleted token takes effect on the next request in every process.

- `CachedTokenAuthentication`: `Authorization: Token <key>`, as DRF's `TokenAuthentication`.
- `CachedJWTAuthentication`: `Authorization: Bearer <jwt>`, as simplejwt's `JWTAuthentication`;
  the token's signature and expiry are still checked on every request, only the user behind
  it comes from memory.
"""

from collections.abc import Callable, Hashable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authentication import TokenAuthentication
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import Token as JWT

from metacore.kernel import get_kernel
from metacore.permissions.access import AccessCache, fresh_copy, read_access_revision

#: One per process: the answers of every credential seen since the access revision last moved.
_cache = AccessCache()


def _cached(key: Hashable, load: Callable[[], tuple[AbstractBaseUser, Any]]) -> tuple[AbstractBaseUser, Any]:
    """`load()`'s user and credential for `key`, with the user's membership and permissions,
    from the cache while the access revision stands; a fresh copy of the user per request."""
    revision = read_access_revision()
    entry = _cache.get(key, revision)
    if entry is None:
        user, credential = load()  # 401 for unknown credentials, inactive users
        getattr(user, "metacore_membership", None)  # loaded once, kept in the user's cache
        permissions = frozenset(get_kernel().permissions.effective(fresh_copy(user)))
        entry = (user, credential, permissions)
        _cache.put(key, revision, entry)
    user, credential, permissions = entry
    user = fresh_copy(user)
    get_kernel().permissions.remember(user, permissions)
    return user, credential


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as `rest_framework.authentication.TokenAuthentication`."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Any]:
        return _cached(key, lambda: super(CachedTokenAuthentication, self).authenticate_credentials(key))


class CachedJWTAuthentication(JWTAuthentication):
    """`Authorization: Bearer <jwt>`, as `rest_framework_simplejwt.authentication.JWTAuthentication`."""

    # simplejwt types get_user with a TypeVar of no argument; it returns a user model instance.
    def get_user(self, validated_token: JWT) -> AbstractBaseUser:  # type: ignore[override]
        # The revocation claim (a hash of the password, when simplejwt checks it) is part of
        # the key: a token issued before a password change never matches the cached answer.
        key = (
            "jwt",
            validated_token.get(jwt_settings.USER_ID_CLAIM),
            validated_token.get(jwt_settings.REVOKE_TOKEN_CLAIM) if jwt_settings.CHECK_REVOKE_TOKEN else None,
        )
        user, _ = _cached(key, lambda: (super(CachedJWTAuthentication, self).get_user(validated_token), None))
        return user
