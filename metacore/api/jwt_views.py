"""JWT sign-in for SDK frontends, on `djangorestframework-simplejwt` (install the `jwt` extra).

The SDK's API client sends `Authorization: Bearer <token>`; a host that wants it adds
`rest_framework_simplejwt.authentication.JWTAuthentication` to DRF's authentication classes
and includes these routes (docs/embedding.md):

    POST auth/login     {"email" or "username", "password"} -> upstream's login envelope
                        {"success", "data": {"token", "refresh", "expires_at", "user"}}
    POST auth/refresh   {"refresh"} -> {"success", "data": {"token", "refresh"?, "expires_at"}}
    GET  auth/me        {"success", "data": {"user"}}
"""

from datetime import UTC, datetime

from django.contrib.auth import authenticate, get_user_model
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.errors import InvalidInput, NotAuthenticated


def _user_json(user):
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": getattr(user, "email", ""),
        "name": user.get_full_name() if hasattr(user, "get_full_name") else "",
    }


def _expires_at(token) -> str:
    return datetime.fromtimestamp(token["exp"], tz=UTC).isoformat()


class _AuthView(EnvelopeErrorsMixin, APIView):
    parser_classes = [JSONParser]
    permission_classes = [AllowAny]
    authentication_classes = []


class LoginView(_AuthView):
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        login, password = data.get("username") or data.get("email"), data.get("password")
        if not isinstance(login, str) or not isinstance(password, str) or not login or not password:
            raise InvalidInput(
                "email (or username) and password are required",
                errors={"password": ["email (or username) and password are required"]},
            )
        user = authenticate(request, username=login, password=password)
        if user is None and "@" in login:
            match = get_user_model()._default_manager.filter(email__iexact=login).first()
            if match is not None:
                user = authenticate(request, username=match.get_username(), password=password)
        if user is None or not user.is_active:
            raise NotAuthenticated("invalid credentials")
        refresh = RefreshToken.for_user(user)
        access = refresh.access_token
        return Response(
            {
                "success": True,
                "data": {
                    "token": str(access),
                    "refresh": str(refresh),
                    "expires_at": _expires_at(access),
                    "user": _user_json(user),
                },
            }
        )


class RefreshView(_AuthView):
    def post(self, request):
        serializer = TokenRefreshSerializer(data=request.data if isinstance(request.data, dict) else {})
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise NotAuthenticated(f"invalid refresh token: {exc}") from None
        tokens = serializer.validated_data
        body = {
            "token": tokens["access"],
            "expires_at": _expires_at(RefreshToken.access_token_class(tokens["access"])),
        }
        if "refresh" in tokens:
            body["refresh"] = tokens["refresh"]
        return Response({"success": True, "data": body})


class MeView(EnvelopeErrorsMixin, APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"success": True, "data": {"user": _user_json(request.user)}})
