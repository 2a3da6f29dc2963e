"""Row action routes (wasm handlers); a trailing slash is optional."""

from django.urls import re_path

from metacore.api.action_views import RowActionView

urlpatterns = [
    re_path(
        r"^dynamic/(?P<model>[^/]+)/(?P<row_id>[^/]+)/action/(?P<key>[^/]+)/?$",
        RowActionView.as_view(),
        name="metacore-row-action",
    ),
]
