"""Django admin: addons (state, version, tables, capabilities, enable/disable), the install
journal, applied SQL migrations, the audit trail and the enforcer mode."""
from django.contrib import admin, messages
from django.utils.html import format_html_join

from metacore.errors import MetacoreError
from metacore.models import AppliedMigration, AuditRecord, EnforcerMode, InstallJournal, Installation


def _run_installer(modeladmin, request, queryset, operation):
    from metacore.kernel import get_kernel

    installer = get_kernel().installer
    for installation in queryset:
        try:
            getattr(installer, operation)(installation.key, actor=request.user)
        except MetacoreError as exc:
            modeladmin.message_user(request, f"{installation.key}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{installation.key}: {operation}d", messages.SUCCESS)


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "version", "state", "table_list", "revision", "updated_at")
    list_filter = ("state",)
    search_fields = ("key", "name")
    actions = ("enable_addons", "disable_addons")
    readonly_fields = (
        "key", "name", "version", "state", "table_list", "capability_list", "revision", "bundle_path",
        "bundle_sha256", "installed_at", "updated_at", "manifest",
    )
    fields = readonly_fields + ("settings", "selected_tools")

    def has_add_permission(self, request):
        return False  # addons are installed from bundles (metacore_install or the API)

    def has_delete_permission(self, request, obj=None):
        return False  # uninstalling drops or keeps tables: metacore_uninstall decides

    @admin.display(description="tables")
    def table_list(self, obj):
        return ", ".join(m.get("table", "") for m in (obj.manifest or {}).get("models", [])) or "-"

    @admin.display(description="capabilities")
    def capability_list(self, obj):
        caps = obj.capabilities or []
        if not caps:
            return "-"
        return format_html_join(
            "", "<div><code>{}</code> {} <small>{}</small></div>",
            ((c.get("kind", ""), c.get("target", ""), c.get("reason", "")) for c in caps),
        )

    @admin.action(description="Enable selected addons", permissions=["change"])
    def enable_addons(self, request, queryset):
        _run_installer(self, request, queryset, "enable")

    @admin.action(description="Disable selected addons", permissions=["change"])
    def disable_addons(self, request, queryset):
        _run_installer(self, request, queryset, "disable")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the kernel: browsable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InstallJournal)
class InstallJournalAdmin(ReadOnlyAdmin):
    list_display = ("at", "addon_key", "operation", "from_version", "to_version", "ok", "actor", "message")
    list_filter = ("operation", "ok", "addon_key")
    search_fields = ("addon_key", "message")


@admin.register(AppliedMigration)
class AppliedMigrationAdmin(ReadOnlyAdmin):
    list_display = ("addon_key", "name", "status", "checksum", "applied_at")
    list_filter = ("status", "addon_key")
    search_fields = ("addon_key", "name", "reason")


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "kind", "decision", "addon", "actor", "tenant", "target", "mode")
    list_filter = ("kind", "decision", "addon", "mode")
    search_fields = ("target", "reason", "actor", "request_id", "trace_id")
    date_hierarchy = "timestamp"


@admin.register(EnforcerMode)
class EnforcerModeAdmin(admin.ModelAdmin):
    list_display = ("scope", "mode", "changed_at", "changed_by")
    list_editable = ("mode",)
    list_display_links = ("scope",)
    readonly_fields = ("changed_at", "changed_by")

    @admin.display(description="scope", ordering="addon_key")
    def scope(self, obj):
        return obj.addon_key or "(global)"

    # Through the enforcer service, so every flip from the admin is audited like the others.
    def save_model(self, request, obj, form, change):
        from metacore.kernel import get_kernel

        get_kernel().enforcer.set_mode(obj.mode, obj.addon_key, actor=request.user.get_username())
        obj.pk = EnforcerMode.objects.get(addon_key=obj.addon_key).pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        from metacore.kernel import get_kernel

        if obj.addon_key:
            get_kernel().enforcer.clear_mode(obj.addon_key, actor=request.user.get_username())
        else:
            self.message_user(request, "the global mode can be changed, not deleted", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


from metacore.integrations import admin as integrations_admin  # noqa: E402,F401  (registers its models)
