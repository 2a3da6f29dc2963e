"""Include with `path("api/", include("metacore.urls"))`."""

from django.urls import include, path

from metacore.api.metrics_views import metrics_view

urlpatterns = [
    path("", include("metacore.api.action_urls")),
    path("", include("metacore.api.transfer_urls")),
    path("", include("metacore.api.store_urls")),
    path("", include("metacore.api.model_meta_urls")),
    path("", include("metacore.api.hub_urls")),
    path("metacore/", include("metacore.api.security_urls")),
    path("metacore/", include("metacore.api.management_urls")),
    path("metacore/", include("metacore.api.integration_urls")),
    path("metrics", metrics_view, name="metacore-metrics"),
]
