"""Addon management routes (mounted under `metacore/`); a trailing slash is optional."""

from django.urls import re_path

from metacore.api import management_views as views

KEY = r"(?P<key>[A-Za-z0-9_.-]+)"

urlpatterns = [
    re_path(r"^catalog/?$", views.CatalogView.as_view(), name="metacore-catalog"),
    re_path(rf"^catalog/{KEY}/?$", views.CatalogDetailView.as_view(), name="metacore-catalog-detail"),
    re_path(r"^installations/?$", views.InstallationListView.as_view(), name="metacore-installations"),
    re_path(rf"^installations/{KEY}/?$", views.InstallationView.as_view(), name="metacore-installation"),
    re_path(
        rf"^installations/{KEY}/enable/?$", views.EnableView.as_view(), name="metacore-installation-enable"
    ),
    re_path(
        rf"^installations/{KEY}/disable/?$", views.DisableView.as_view(), name="metacore-installation-disable"
    ),
    re_path(
        rf"^installations/{KEY}/settings/?$",
        views.SettingsView.as_view(),
        name="metacore-installation-settings",
    ),
    re_path(
        rf"^installations/{KEY}/secret/?$", views.SecretView.as_view(), name="metacore-installation-secret"
    ),
    re_path(
        rf"^installations/{KEY}/upgrade/?$", views.UpgradeView.as_view(), name="metacore-installation-upgrade"
    ),
    re_path(r"^navigation/?$", views.NavigationView.as_view(), name="metacore-navigation"),
    re_path(r"^manifests/?$", views.ManifestsView.as_view(), name="metacore-manifests"),
    re_path(
        rf"^addons/{KEY}/frontend/(?P<path>.+)$",
        views.FrontendFileView.as_view(),
        name="metacore-addon-frontend",
    ),
]
