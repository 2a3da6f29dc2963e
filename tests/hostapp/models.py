"""Ordinary Django models of a host, served through the dynamic API by the host-model tests
(`metacore.register_model`). Not an installed app: the tests create and drop the tables."""

from django.conf import settings
from django.db import models


class Crew(models.Model):
    """Unscoped: no organization column, every organization sees every crew."""

    name = models.CharField(max_length=80, unique=True)

    class Meta:
        app_label = "hostapp"


class Bulletin(models.Model):
    organization_id = models.UUIDField(db_index=True)
    title = models.CharField(max_length=120)
    body = models.TextField(blank=True)
    priority = models.IntegerField(default=1)
    done = models.BooleanField(default=False)
    crew = models.ForeignKey(Crew, null=True, blank=True, on_delete=models.PROTECT)
    # No SQL constraint: the test table is outside Django's flush, which truncates auth_user.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False
    )
    attachment = models.FileField(blank=True)  # no column type: not served
    created_at = models.DateTimeField(auto_now_add=True)
    touched = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "hostapp"


def register():
    import metacore

    metacore.register_model(Crew, key="crews")
    metacore.register_model(Bulletin, key="bulletins", search=["title", "body"])
