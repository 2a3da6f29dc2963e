"""Dynamic CRUD routes; a trailing slash is optional (no redirects)."""

from django.urls import re_path

from metacore.api.store_views import DynamicDetailView, DynamicListView

urlpatterns = [
    re_path(r"^dynamic/(?P<model>[^/]+)/?$", DynamicListView.as_view(), name="metacore-dynamic-list"),
    re_path(
        r"^dynamic/(?P<model>[^/]+)/(?P<row_id>[^/]+)/?$",
        DynamicDetailView.as_view(),
        name="metacore-dynamic-detail",
    ),
]
