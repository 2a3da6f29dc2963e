"""Import/export routes, mounted before the dynamic CRUD routes (whose `<id>` would match)."""

from django.urls import re_path

from metacore.api import transfer_views as views

urlpatterns = [
    re_path(
        r"^dynamic/(?P<model>[^/]+)/export/template/?$",
        views.ExportTemplateView.as_view(),
        name="metacore-dynamic-export-template",
    ),
    re_path(
        r"^dynamic/(?P<model>[^/]+)/export/?$", views.ExportView.as_view(), name="metacore-dynamic-export"
    ),
    re_path(
        r"^dynamic/(?P<model>[^/]+)/import/validate/?$",
        views.ImportValidateView.as_view(),
        name="metacore-dynamic-import-validate",
    ),
    re_path(
        r"^dynamic/(?P<model>[^/]+)/import/?$", views.ImportView.as_view(), name="metacore-dynamic-import"
    ),
]
