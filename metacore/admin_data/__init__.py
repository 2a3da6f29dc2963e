"""Addon data in the Django admin (docs/admin.md).

`site.MetacoreAdminSite` is the default admin site (`apps.MetacoreAdminConfig` in
INSTALLED_APPS instead of `django.contrib.admin`): everything registered with
`@admin.register` stays, and every model of every enabled addon is added at request time
from the model registry, so installs, upgrades and uninstalls show on the next page load
in every process. `model_admin` builds one ModelAdmin per runtime class from the same
metadata derivation the API uses; every write goes through the store service.
"""
