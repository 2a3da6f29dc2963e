"""Base classes shared by metacore's admin modules (kept apart so they import no admin page)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the kernel: browsable, never added, edited or deleted here, not
    even by a superuser (audit retention is `manage.py metacore_audit_prune`)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
