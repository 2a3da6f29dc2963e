"""JWT routes for SDK frontends: `path("api/auth/", include("metacore.api.jwt_urls"))`
(needs `djangorestframework-simplejwt`: the `jwt` extra)."""

from django.urls import re_path

from metacore.api import jwt_views as views

urlpatterns = [
    re_path(r"^login/?$", views.LoginView.as_view(), name="metacore-auth-login"),
    re_path(r"^refresh/?$", views.RefreshView.as_view(), name="metacore-auth-refresh"),
    re_path(r"^me/?$", views.MeView.as_view(), name="metacore-auth-me"),
]
