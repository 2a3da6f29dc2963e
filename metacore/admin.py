"""Django admin as an operator's console: addons (state, version, effective enforcer mode, the
manifest as tables, settings through a form built from the manifest's `settings[]`,
enable/disable, install or upgrade from an uploaded bundle with the plan shown first), and
the records the kernel writes (install journal, applied SQL migrations, audit trail), which
nobody edits or deletes here, superusers included: audit retention is `metacore_audit_prune`.

Every change goes through the same services as the API and the commands, so it is
validated and audited alike."""

import hashlib
import secrets
import time
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from metacore.admin_base import ReadOnlyAdmin
from metacore.conf import data_dir
from metacore.context import CallContext, user_actor
from metacore.errors import InvalidInput, MetacoreError
from metacore.installer import management
from metacore.installer.setting_types import TEXT_TYPES, clean_settings, declared_settings
from metacore.manifest.model import Manifest
from metacore.models import AppliedMigration, AuditRecord, EnforcerMode, Installation, InstallJournal

UPGRADE_TOKEN_SALT = "metacore.admin.upgrade"  # noqa: S105 (a signing namespace, not a secret)
UPGRADE_TOKEN_MAX_AGE = 3600  # seconds between reading the plan and applying it


def _kernel():
    from metacore.kernel import get_kernel

    return get_kernel()


def _run_installer(modeladmin, request, queryset, operation):
    installer = _kernel().installer
    for installation in queryset:
        try:
            getattr(installer, operation)(installation.key, context=CallContext.from_request(request))
        except MetacoreError as exc:
            modeladmin.message_user(request, f"{installation.key}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{installation.key}: {operation}d", messages.SUCCESS)


def _mode_source(modes, addon_key):
    """Where an addon's effective enforcer mode comes from, for `EnforcerService.modes()`."""
    if addon_key in modes["overrides"]:
        return "addon override"
    return "global mode" if modes["global"] else "default"


def _nowrap(value):
    return format_html('<span style="white-space: nowrap">{}</span>', value) if value else "-"


# -- settings form ------------------------------------------------------------------------

SETTING_PREFIX = "setting__"


def _setting_field(spec, current):
    """A form field for one declared setting; secrets are write-only (never rendered back)."""
    common = {
        "label": spec.label,
        "help_text": spec.help,
        "required": spec.required and spec.type != "boolean",
    }
    if spec.secret:
        state = "set" if current else "not set"
        return forms.CharField(
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            label=spec.label,
            required=False,
            help_text=f"write-only ({state}): leave blank to keep the current value. {spec.help}".strip(),
        )
    if spec.type == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    if spec.type == "integer":
        return forms.IntegerField(**common)
    if spec.type == "number":
        return forms.FloatField(**common)
    if spec.type == "select" and spec.options:
        by_text = {str(value): value for value, _ in spec.options}
        return forms.TypedChoiceField(
            choices=[(str(v), label) for v, label in spec.options],
            coerce=lambda text: by_text[text],
            **common,
        )
    if spec.type in TEXT_TYPES:
        widget = forms.Textarea(attrs={"rows": 3}) if spec.type in ("text", "textarea") else None
        return forms.CharField(widget=widget, strip=False, **common)
    return forms.JSONField(**common)  # a type this host does not know: any JSON, kept as given


class SettingsForm(forms.ModelForm):
    """The installation's settings, one field per declared setting; `clean` checks them with
    the service's own rules (`setting_types.clean_settings`)."""

    class Meta:
        model = Installation
        fields = ()

    @classmethod
    def for_installation(cls, installation):
        """A form class with one declared field per setting the installation's manifest declares."""
        specs = declared_settings(installation.manifest) if installation is not None else []
        current = (installation.settings or {}) if installation is not None else {}
        fields = {SETTING_PREFIX + spec.key: _setting_field(spec, current.get(spec.key)) for spec in specs}
        return type("InstallationSettingsForm", (cls,), {**fields, "specs": specs})

    specs = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.settings or {}
        for spec in self.specs:
            if not spec.secret:
                default = spec.default if spec.has_default else None
                self.fields[SETTING_PREFIX + spec.key].initial = current.get(spec.key, default)

    def clean(self):
        cleaned = super().clean()
        current = self.instance.settings or {}
        values = {}
        for spec in self.specs:
            value = cleaned.get(SETTING_PREFIX + spec.key)
            if spec.secret and not value:
                if spec.key in current:
                    values[spec.key] = current[spec.key]  # write-only: blank keeps it
                continue
            if value is None and not spec.required and spec.key not in current:
                continue
            values[spec.key] = value
        try:
            self.settings_values = clean_settings(
                self.instance.manifest, values, addon=self.instance.key, previous=current
            )
        except MetacoreError as exc:
            for name, problems in (exc.errors or {}).items():
                field = SETTING_PREFIX + name
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


def _pending_dir():
    return data_dir("uploads/pending")


def _keep_upload(upload):
    """Keep an uploaded bundle, as uploaded, until its plan is applied or expires: a private
    file with a random name in DATA_DIR/uploads/pending. Expired ones are removed here."""
    now = time.time()
    for stale in _pending_dir().glob("*.tar.gz"):
        if now - stale.stat().st_mtime > UPGRADE_TOKEN_MAX_AGE:
            stale.unlink(missing_ok=True)
    kept = _pending_dir() / f"{secrets.token_hex(16)}.tar.gz"
    digest = hashlib.sha256()
    with kept.open("xb") as out:
        for chunk in upload.chunks():
            digest.update(chunk)
            out.write(chunk)
    kept.chmod(0o600)
    return kept, digest.hexdigest()


def _kept_upload(name: str, sha256: str):
    """The pending bundle a (signed) token names, if it is still there and unchanged."""
    kept = _pending_dir() / Path(name).name
    if not kept.is_file() or hashlib.sha256(kept.read_bytes()).hexdigest() != sha256:
        raise InvalidInput("the uploaded bundle is gone or changed since its plan was shown: upload it again")
    return kept


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(help_text="a bundle .tar.gz (signed, unless this host allows unsigned bundles)")


# -- addons -------------------------------------------------------------------------------


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    form = SettingsForm
    change_list_template = "admin/metacore/installation/change_list.html"
    list_display = (
        "key",
        "name",
        "version",
        "state",
        "enforcer_mode",
        "table_list",
        "revision",
        "updated_at",
    )
    list_filter = ("state",)
    search_fields = ("key", "name")
    actions = ("enable_addons", "disable_addons")
    readonly_fields = (
        "key",
        "name",
        "version",
        "state",
        "enforcer_mode",
        "revision",
        "bundle_sha256",
        "installed_at",
        "updated_at",
        "manifest_overview",
    )

    def has_add_permission(self, request):
        return False  # addons are installed from bundles: "Install or upgrade from a bundle"

    def has_delete_permission(self, request, obj=None):
        return False  # uninstalling drops or keeps tables: metacore_uninstall decides

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (
                None,
                {
                    "fields": (
                        "key",
                        "name",
                        "version",
                        "state",
                        "enforcer_mode",
                        "revision",
                        "bundle_sha256",
                        "installed_at",
                        "updated_at",
                    )
                },
            )
        ]
        specs = declared_settings(obj.manifest) if obj is not None else []
        if specs:
            fieldsets.append(("Settings", {"fields": [SETTING_PREFIX + s.key for s in specs]}))
        fieldsets.append(("Manifest", {"fields": ("manifest_overview",)}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        return super().get_form(request, obj, change, form=SettingsForm.for_installation(obj), **kwargs)

    def save_model(self, request, obj, form, change):
        """Settings go through the management service (validation + `addon.settings` audit),
        exactly as POST /api/metacore/installations/<key>/settings."""
        if not form.specs:
            return
        kernel = _kernel()
        updated = management.update_settings(
            kernel.installer,
            kernel.registry,
            kernel.audit,
            obj.key,
            form.settings_values,
            context=CallContext.from_request(request),
        )
        obj.settings = updated.settings

    def save_related(self, request, form, formsets, change):
        pass  # nothing related to save; the settings were saved by save_model

    @admin.display(description="tables")
    def table_list(self, obj):
        return ", ".join(m.get("table", "") for m in (obj.manifest or {}).get("models", [])) or "-"

    @admin.display(description="enforcer mode")
    def enforcer_mode(self, obj):
        enforcer = _kernel().enforcer
        return format_html(
            "<b>{}</b> <small>({})</small>",
            enforcer.mode_for(obj.key),
            _mode_source(enforcer.modes(), obj.key),
        )

    @admin.display(description="manifest")
    def manifest_overview(self, obj):
        manifest = Manifest.model_validate(obj.manifest)
        stored = obj.settings or {}
        settings = [
            {
                "spec": s,
                "value": ("(set)" if stored.get(s.key) else "(not set)")
                if s.secret
                else stored.get(s.key, ""),
            }
            for s in declared_settings(manifest)
        ]
        return render_to_string(
            "admin/metacore/installation/manifest.html",
            {"manifest": manifest, "settings": settings, "capabilities": obj.capabilities or []},
        )

    @admin.action(description="Enable selected addons", permissions=["change"])
    def enable_addons(self, request, queryset):
        _run_installer(self, request, queryset, "enable")

    @admin.action(description="Disable selected addons", permissions=["change"])
    def disable_addons(self, request, queryset):
        _run_installer(self, request, queryset, "disable")

    # -- install / upgrade from an uploaded bundle -------------------------------------------

    def get_urls(self):
        return [
            path(
                "upload/", self.admin_site.admin_view(self.upload_view), name="metacore_installation_upload"
            ),
            path(
                "upgrade/",
                self.admin_site.admin_view(self.apply_upgrade_view),
                name="metacore_installation_upgrade",
            ),
        ] + super().get_urls()

    def _require_manager(self, request):
        """The admin's change permission on addons, and the management API's own rule."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        management.require_manager(_kernel().audit, request.user, "installing and upgrading addons")

    def _page(self, request, template, **context):
        return TemplateResponse(
            request,
            f"admin/metacore/installation/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": context.pop("title"),
                **context,
            },
        )

    def upload_view(self, request):
        """Upload a bundle: a new addon is installed at once; an installed one gets its
        upgrade plan shown, applied only by the next step (`apply_upgrade_view`)."""
        self._require_manager(request)
        form = BundleUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            kernel = _kernel()
            kept, sha256 = _keep_upload(form.cleaned_data["bundle"])
            try:
                bundle = kernel.installer.preflight(kept)
                if bundle.manifest.key not in {a.key for a in kernel.registry.installed_addons()}:
                    kept.unlink()
                    result, secret = management.install(
                        kernel.installer,
                        bundle,
                        context=CallContext.from_request(request),
                        options=management.install_options({}),
                    )
                    return self._page(
                        request,
                        "installed.html",
                        title=f"Installed {result.key} {result.version}",
                        result=result,
                        secret=secret,
                    )
                plan = kernel.installer.plan(bundle)
            except MetacoreError as exc:
                kept.unlink(missing_ok=True)
                form.add_error("bundle", exc.message)
            else:
                if plan.blocked:
                    kept.unlink()
                token = signing.dumps({"upload": kept.name, "sha256": sha256}, salt=UPGRADE_TOKEN_SALT)
                return self._page(
                    request,
                    "plan.html",
                    title=f"Upgrade {plan.key} {plan.from_version} → {plan.to_version}",
                    plan=plan,
                    token=token,
                )
        return self._page(request, "upload.html", title="Install or upgrade from a bundle", form=form)

    def apply_upgrade_view(self, request):
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:metacore_installation_upload"))
        self._require_manager(request)
        try:
            try:
                chosen = signing.loads(
                    request.POST.get("token", ""), salt=UPGRADE_TOKEN_SALT, max_age=UPGRADE_TOKEN_MAX_AGE
                )
            except signing.BadSignature:
                raise InvalidInput(
                    "the upgrade plan expired or was altered: upload the bundle again"
                ) from None
            kept = _kept_upload(chosen["upload"], chosen["sha256"])
            result = _kernel().installer.upgrade(
                kept,
                allow_destructive=bool(request.POST.get("allow_destructive")),
                context=CallContext.from_request(request),
            )
            kept.unlink()  # a refused upgrade keeps it (until it expires), to try again from the plan
        except MetacoreError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:metacore_installation_upload"))
        self.message_user(
            request, f"upgraded {result.installation.key} to {result.installation.version}", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:metacore_installation_changelist"))


# -- records the kernel writes: read-only for everyone --------------------------------------


def _with_actor_username(queryset):
    """Annotate `actor_username`: the username when `actor` holds a user's primary key (the
    API records ids), so the page shows names without one query per row."""
    users = get_user_model()._default_manager.annotate(pk_text=Cast("pk", CharField()))
    username = users.filter(pk_text=OuterRef("actor")).values(get_user_model().USERNAME_FIELD)[:1]
    return queryset.annotate(actor_username=Subquery(username))


class ActorMixin:
    def get_queryset(self, request):
        return _with_actor_username(super().get_queryset(request))

    @admin.display(description="actor", ordering="actor")
    def actor_name(self, obj):
        return getattr(obj, "actor_username", None) or obj.actor or "-"


@admin.register(InstallJournal)
class InstallJournalAdmin(ActorMixin, ReadOnlyAdmin):
    list_display = (
        "at",
        "addon_key",
        "operation",
        "from_version",
        "to_version",
        "ok",
        "actor_name",
        "message",
    )
    list_filter = ("operation", "ok", "addon_key")
    search_fields = ("addon_key", "message", "actor")


@admin.register(AppliedMigration)
class AppliedMigrationAdmin(ReadOnlyAdmin):
    list_display = ("addon_key", "name", "status", "checksum", "applied_at")
    list_filter = ("status", "addon_key")
    search_fields = ("addon_key", "name", "reason")


@admin.register(AuditRecord)
class AuditRecordAdmin(ActorMixin, ReadOnlyAdmin):
    list_display = ("timestamp", "kind", "decision", "addon", "actor_name", "tenant_id", "target", "mode")
    list_filter = ("kind", "decision", "addon", "mode")
    search_fields = ("target", "reason", "actor", "tenant", "request_id", "trace_id")
    date_hierarchy = "timestamp"

    @admin.display(description="tenant", ordering="tenant")
    def tenant_id(self, obj):
        return _nowrap(obj.tenant)


# -- enforcer ------------------------------------------------------------------------------


class EnforcerModeForm(forms.ModelForm):
    class Meta:
        model = EnforcerMode
        fields = ("addon_key", "mode")  # changed_at and changed_by are set by the admin

    def clean_addon_key(self):
        """An override names an installed addon (the enforcer refuses others)."""
        key = self.cleaned_data.get("addon_key") or ""
        if key:
            try:
                _kernel().enforcer.require_installed(key)
            except MetacoreError as exc:
                raise forms.ValidationError(exc.message) from None
        return key


@admin.register(EnforcerMode)
class EnforcerModeAdmin(admin.ModelAdmin):
    form = EnforcerModeForm

    """The stored modes (rows) under the effective mode of the host and of every addon, which
    holds even when no row is stored (the default, METACORE['ENFORCER_DEFAULT_MODE'])."""

    change_list_template = "admin/metacore/enforcermode/change_list.html"
    list_display = ("scope", "mode", "changed_at", "changed_by")
    list_editable = ("mode",)
    list_display_links = ("scope",)
    readonly_fields = ("changed_at", "changed_by")

    @admin.display(description="scope", ordering="addon_key")
    def scope(self, obj):
        return obj.addon_key or "(global)"

    def changelist_view(self, request, extra_context=None):
        enforcer = _kernel().enforcer
        modes = enforcer.modes()
        effective = [
            {"scope": i.key, "mode": enforcer.mode_for(i.key), "source": _mode_source(modes, i.key)}
            for i in _kernel().registry.installed_addons()
        ]
        context = {
            "global_mode": modes["effective"],
            "global_source": "set" if modes["global"] else "default",
            "effective_modes": effective,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    # Through the enforcer service, so every flip from the admin is audited like the others.
    def save_model(self, request, obj, form, change):
        _kernel().enforcer.set_mode(obj.mode, obj.addon_key, actor=user_actor(request.user))
        obj.pk = EnforcerMode.objects.get(addon_key=obj.addon_key).pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        if obj.addon_key:
            _kernel().enforcer.clear_mode(obj.addon_key, actor=user_actor(request.user))
        else:
            self.message_user(request, "the global mode can be changed, not deleted", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


from metacore.integrations import admin as integrations_admin  # noqa: E402,F401  (registers its models)
