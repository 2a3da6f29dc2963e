"""Security routes (mounted under `metacore/`); a trailing slash is optional."""

from django.urls import re_path

from metacore.api import security_views as views

urlpatterns = [
    re_path(r"^enforcer/?$", views.EnforcerView.as_view(), name="metacore-enforcer"),
]
