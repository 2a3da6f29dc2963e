from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("metacore.api.jwt_urls")),
    path("api/", include("metacore.urls")),
]
