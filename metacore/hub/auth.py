"""WebSocket authentication: the host's DRF token authentication, on top of the session.

Browsers cannot set headers on a WebSocket, so a token comes as `?token=` (what the
`@asteby/metacore-websocket` clients send) or, from other clients, as
`Authorization: Token <key>`. It is checked by the token authentication classes the host
lists in DRF's `DEFAULT_AUTHENTICATION_CLASSES` (`TokenAuthentication` and subclasses, so a
host's own token model or expiry rules apply). Without a token, Channels'
`AuthMiddlewareStack` (session cookie) decides. The consumer closes unauthenticated sockets
with 4401 and the reason recorded here in `scope["metacore_auth_error"]`.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.sessions import InstanceSessionWrapper, SessionMiddleware


def query_params(scope) -> dict:
    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}


def _token_from(scope):
    token = query_params(scope).get("token")
    if token:
        return token
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() in ("token", "bearer") and key.strip():
                return key.strip()
    return None


def _token_authenticators():
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.settings import api_settings

    return [
        cls()
        for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
        if issubclass(cls, TokenAuthentication) or hasattr(cls, "get_validated_token")
    ]


def _user_for(authenticator, key):
    if hasattr(authenticator, "get_validated_token"):  # simplejwt's JWTAuthentication: a bearer JWT
        return authenticator.get_user(authenticator.get_validated_token(key.encode()))
    return authenticator.authenticate_credentials(key)[0]


def token_user(key: str) -> tuple[Any, str | None]:
    """(user, None) for a valid token (a DRF token, or a JWT when the host lists simplejwt's
    authentication), (None, reason) otherwise, the reason of the first class that refused
    (synchronous). Rechecks call it again, so an expired JWT closes its socket too."""
    from rest_framework.exceptions import AuthenticationFailed

    authenticators = _token_authenticators()
    if not authenticators:
        return None, "token authentication is not enabled on this host"
    reasons: list[object] = []
    for authenticator in authenticators:
        try:
            user = _user_for(authenticator, key)
        except AuthenticationFailed as exc:
            reasons.append(
                exc.detail.get("detail", exc.detail) if isinstance(exc.detail, dict) else exc.detail
            )
            continue
        if user is not None and user.is_active:
            return user, None
        reasons.append("User inactive or deleted.")
    return None, str(reasons[0]) if reasons else "invalid token"


authenticate_token = database_sync_to_async(token_user)


def session_user(session_key: str) -> Any:
    """The user a session still authenticates, or None (logged out, expired, password changed):
    what `django.contrib.auth.get_user` decides for a request carrying that session."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.utils.crypto import constant_time_compare

    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user_id, backend_path = session.get(SESSION_KEY), session.get(BACKEND_SESSION_KEY)
    if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None or not hasattr(user, "get_session_auth_hash"):
        return user
    stored = session.get(HASH_SESSION_KEY) or ""
    if any(constant_time_compare(stored, h) for h in (user.get_session_auth_hash(), *_fallback_hashes(user))):
        return user
    return None


def _fallback_hashes(user):
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return tuple(fallbacks()) if fallbacks else ()


def credential(scope):
    """How a socket authenticated, for rechecks: ("token", key), ("session", session key) or
    ("user", pk) when something else put the user in the scope."""
    key = _token_from(scope)
    if key is not None:
        return ("token", key)
    session = scope.get("session")
    session_key = getattr(session, "session_key", None) if session is not None else None
    if session_key:
        return ("session", session_key)
    return ("user", scope["user"].pk)


class TokenAuthMiddleware(BaseMiddleware):
    """Sets `scope["user"]` from a token when one is presented (a bad token is an error even
    when a session cookie would authenticate: the client asked to be someone specific)."""

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "websocket":
            key = _token_from(scope)
            if key is not None:
                user, reason = await authenticate_token(key)
                scope = dict(scope)
                if user is not None:
                    scope["user"] = user
                else:
                    from django.contrib.auth.models import AnonymousUser

                    scope["user"] = AnonymousUser()
                    scope["metacore_auth_error"] = reason
        return await super().__call__(scope, receive, send)


class SocketSessionMiddleware(SessionMiddleware):
    """Channels' `SessionMiddleware` (the session from the cookie in `scope["session"]`),
    without its wrapper around `send`: that wrapper saves a modified session only on
    `http.response.start`, which a WebSocket never sends, yet it reads the lazy session twice
    on every frame (a sixth of the server's CPU in a 1,000-socket burst, bench/hub.py)."""

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def HubAuthStack(inner):
    """Session (cookie) auth, then token auth over it: Channels' `AuthMiddlewareStack` with
    `SocketSessionMiddleware` (WebSocket scopes only, which is all the hub routes)."""
    from channels.auth import AuthMiddleware
    from channels.sessions import CookieMiddleware

    return CookieMiddleware(SocketSessionMiddleware(AuthMiddleware(TokenAuthMiddleware(inner))))
