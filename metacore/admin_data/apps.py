from django.contrib.admin.apps import AdminConfig


class MetacoreAdminConfig(AdminConfig):
    """`django.contrib.admin` with metacore's site as the default `admin.site`."""

    default_site = "metacore.admin_data.site.MetacoreAdminSite"
