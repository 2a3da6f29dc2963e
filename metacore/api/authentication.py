"""`CachedTokenAuthentication`: DRF's token authentication answered from memory.

Each process keeps, per token, the user with its tenant membership and addon permissions
(`metacore.permissions.access.AccessCache`), valid while the stored access revision is the
one it read: a request costs one primary-key read instead of the token, membership and
permission queries, and a revoked grant, a moved membership or a deleted token takes effect
on the next request in every process.
"""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.authentication import TokenAuthentication

from metacore.kernel import get_kernel
from metacore.permissions.access import AccessCache, fresh_copy, read_access_revision

#: One per process: the answers of every token seen since the access revision last moved.
_cache = AccessCache()


class CachedTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as `rest_framework.authentication.TokenAuthentication`."""

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Any]:
        revision = read_access_revision()
        entry = _cache.get(key, revision)
        if entry is None:
            user, token = super().authenticate_credentials(key)  # 401 for unknown keys, inactive users
            getattr(user, "metacore_membership", None)  # loaded once, kept in the user's cache
            permissions = frozenset(get_kernel().permissions.effective(fresh_copy(user)))
            entry = (user, token, permissions)
            _cache.put(key, revision, entry)
        user, token, permissions = entry
        user = fresh_copy(user)
        get_kernel().permissions.remember(user, permissions)
        return user, token
