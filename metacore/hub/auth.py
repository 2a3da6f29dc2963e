"""WebSocket authentication: the host's DRF token authentication, on top of the session.

Browsers cannot set headers on a WebSocket, so a token comes as `?token=` (what the
`@asteby/metacore-websocket` clients send) or, from other clients, as
`Authorization: Token <key>`. It is checked by the token authentication classes the host
lists in DRF's `DEFAULT_AUTHENTICATION_CLASSES` (`TokenAuthentication` and subclasses, so a
host's own token model or expiry rules apply). Without a token, Channels'
`AuthMiddlewareStack` (session cookie) decides. The consumer closes unauthenticated sockets
with 4401 and the reason recorded here in `scope["metacore_auth_error"]`.
"""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware


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

    return [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES if issubclass(cls, TokenAuthentication)]


@database_sync_to_async
def authenticate_token(key):
    """(user, None) for a valid token, (None, reason) otherwise."""
    from rest_framework.exceptions import AuthenticationFailed

    authenticators = _token_authenticators()
    if not authenticators:
        return None, "token authentication is not enabled on this host"
    reason = "invalid token"
    for authenticator in authenticators:
        try:
            user, _ = authenticator.authenticate_credentials(key)
            return user, None
        except AuthenticationFailed as exc:
            reason = str(exc.detail)
    return None, reason


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


def HubAuthStack(inner):
    """Session (cookie) auth, then token auth over it."""
    from channels.auth import AuthMiddlewareStack

    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
