"""One ModelAdmin per addon runtime class, derived from its manifest.

Reads use the store's tenant-scoped queryset (`StoreService.scoped_queryset`), so every
admin page, filter, autocomplete and action sees only the acting organization's live rows.
Writes never touch the model instance: the change form hands its cleaned values to
`StoreService.create/update` while the form validates (a store rejection becomes form
errors), and deletes go through `StoreService.delete` (soft delete honoured). Validation,
permissions, audit (actor = the admin user) and the realtime DATA_EVENT are therefore
exactly the API's.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import functools
import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import AllValuesFieldListFilter, RelatedOnlyFieldListFilter, helpers
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import connections
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, resolve, reverse
from django.utils.html import format_html

from metacore import errors
from metacore.admin_data.tenancy import admin_context
from metacore.metadata import derive
from metacore.permissions.naming import model_permission
from metacore.schema.builder import field_names
from metacore.store import rls

#: Django admin permission -> the store's verb in `<addon>.<table>.<verb>`.
VERBS = {"view": "read", "add": "create", "change": "update", "delete": "delete"}
#: Columns never on a form (tenant and soft-delete plumbing).
HIDDEN = derive.INTERNAL


def _kernel():
    from metacore.kernel import get_kernel

    return get_kernel()


def redispatch(request):
    """Resolve `request` again (after the patterns changed) and call what it names now."""
    match = resolve(request.path_info, getattr(request, "urlconf", None))
    return match.func(request, *match.args, **match.kwargs)


def _json_value(value):
    """A cleaned form value as the store's API would receive it."""
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return str(value.pk)
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


class StoreForm(forms.ModelForm):
    """Validated by Django's form fields, then written by the store (its errors land on
    the form, so a rejected write re-renders the page with the reason)."""

    admin_ctx = None
    model_admin = None

    def _post_clean(self):
        if self.errors:
            return
        store, ref, ctx = _kernel().store, self.model_admin.ref, self.admin_ctx
        names = self.model_admin.column_of_field
        changed = (
            self.changed_data
            if self.instance.pk is not None and not self.instance._state.adding
            else self.fields
        )
        payload = {names[f]: _json_value(self.cleaned_data.get(f)) for f in changed if f in names}
        try:
            if self.instance._state.adding:
                row = store.create(ctx, ref, payload)
            else:
                row = (
                    store.update(ctx, ref, self.instance.pk, payload)
                    if payload
                    else {"id": str(self.instance.pk)}
                )
        except (errors.InvalidInput, errors.Conflict) as exc:
            fields = {column: field for field, column in names.items()}
            for column, problems in (exc.errors or {}).items():
                self.add_error(fields.get(column) if fields.get(column) in self.fields else None, problems)
            if not exc.errors:
                self.add_error(None, exc.message)
        except errors.Forbidden as exc:
            raise PermissionDenied(exc.message) from None
        except errors.NotFound as exc:
            raise Http404(exc.message) from None
        else:
            self.instance = self.model_admin.get_queryset_for(ctx).get(pk=row["id"])


class AddonModelAdmin(admin.ModelAdmin):
    """Configured per model by `model_admin_for`; never registered, served by the site."""

    resolved = None
    column_of_field: dict = {}
    form_labels: dict = {}
    form = StoreForm
    view_on_site = False
    show_full_result_count = True
    list_per_page = 50
    actions = ["export_csv"]  # plus the site-wide delete_selected
    change_list_template = "metacore/admin_data/change_list.html"

    @property
    def ref(self):
        return f"{self.resolved.installation_key}.{self.resolved.spec.table}"

    # -- permissions: the addon's own, through the permission service --------------------
    def _allowed(self, request, verb):
        codename = model_permission(self.resolved.installation_key, self.resolved.spec.table, VERBS[verb])
        return _kernel().permissions.has(request.user, codename)

    # Every admin page shows rows, so each verb also needs read (the API's GET does).
    def has_view_permission(self, request, obj=None):
        return self._allowed(request, "view")

    def has_add_permission(self, request):
        return self._allowed(request, "view") and self._allowed(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._allowed(request, "view") and self._allowed(request, "change")

    def has_delete_permission(self, request, obj=None):
        return self._allowed(request, "view") and self._allowed(request, "delete")

    def has_module_permission(self, request):
        return any(self._allowed(request, verb) for verb in VERBS)

    # -- reads: the tenant's live rows -------------------------------------------------
    def get_queryset_for(self, ctx):
        store = _kernel().store
        try:
            return store.scoped_queryset(ctx, self.resolved)
        except errors.Forbidden:  # org-scoped and no organization chosen: nothing
            return self.model._default_manager.none()

    def get_queryset(self, request):
        queryset = self.get_queryset_for(admin_context(request))
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        target = self.admin_site.get_model_admin(db_field.remote_field.model)
        kwargs["queryset"] = target.get_queryset(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs.setdefault("labels", self.form_labels)
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"admin_ctx": admin_context(request), "model_admin": self})

    @contextlib.contextmanager
    def tenant_scope(self, request):
        """On PostgreSQL under row-level security, the page runs with `metacore.tenant` set."""
        ctx = admin_context(request)
        connection = connections[self.model._default_manager.db]
        if self.resolved.spec.org_scoped and ctx.tenant and rls.binds(connection):
            with _kernel().store.tenant_transaction(ctx, self.resolved):
                yield
        else:
            yield

    def changelist_view(self, request, extra_context=None):
        if self.resolved.spec.org_scoped and not admin_context(request).tenant:
            self.message_user(
                request, "This model is organization-scoped: pick an organization first.", messages.WARNING
            )
        with self.tenant_scope(request):
            response = super().changelist_view(request, extra_context)
            return response.render() if hasattr(response, "render") else response

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with self.tenant_scope(request):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            return response.render() if hasattr(response, "render") else response

    def delete_view(self, request, object_id, extra_context=None):
        with self.tenant_scope(request):
            response = super().delete_view(request, object_id, extra_context)
            return response.render() if hasattr(response, "render") else response

    # -- writes: the store ------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        """Nothing left to do: the form wrote through the store while validating."""

    def delete_model(self, request, obj):
        self._store_call(request, lambda ctx: _kernel().store.delete(ctx, self.ref, obj.pk))

    def delete_queryset(self, request, queryset):
        for pk in list(queryset.values_list("pk", flat=True)):
            self._store_call(request, lambda ctx, pk=pk: _kernel().store.delete(ctx, self.ref, pk))

    def _store_call(self, request, call):
        try:
            return call(admin_context(request))
        except errors.Forbidden as exc:
            raise PermissionDenied(exc.message) from None
        except errors.NotFound as exc:
            raise Http404(exc.message) from None

    # The audit trail is metacore's (`crud.*` records); Django's LogEntry would need a
    # content type for a class outside the app registry.
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None

    def history_view(self, request, object_id, extra_context=None):
        target = f"{self.ref}:{object_id}"
        try:
            url = reverse("admin:metacore_auditrecord_changelist", current_app=self.admin_site.name)
        except NoReverseMatch:  # the host's admin does not list the audit trail
            raise Http404("no audit trail page") from None
        return HttpResponseRedirect(f"{url}?q={target}")

    # -- actions ------------------------------------------------------------------------
    @admin.action(description="Export selected rows (CSV)", permissions=["view"])
    def export_csv(self, request, queryset):
        ids = [str(pk) for pk in queryset.values_list("pk", flat=True)]
        export = _kernel().transfer.export(admin_context(request), self.ref, {"f_id": f"in:{','.join(ids)}"})
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = [
            path("import/", self.admin_site.admin_view(self.import_view), name="{}_{}_import".format(*info)),
            *super().get_urls(),
        ]
        for pattern in urls:
            pattern.callback = self._current_only(pattern.callback)
        return urls

    def _current_only(self, view):
        """Serve only while this admin's class is current: after an upgrade or uninstall
        (seen here, on the view's thread) the request is resolved again."""

        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            if self.admin_site.addon_admins().get(self.model) is not self:
                self.admin_site._live.refresh()
                return redispatch(request)
            return view(request, *args, **kwargs)

        return inner

    def import_view(self, request):
        """Upload a CSV or JSON file: every row is validated first, then all are written
        through the import service (nothing is written when one row is invalid)."""
        from metacore.store.transfer import read_csv, read_json

        if not self.has_add_permission(request):
            raise PermissionDenied
        report = None
        if request.method == "POST" and request.FILES.get("file"):
            upload = request.FILES["file"]
            try:
                records = (
                    read_json(json.load(upload))
                    if upload.name.lower().endswith(".json")
                    else read_csv(upload)
                )
                with self.tenant_scope(request):
                    report = _kernel().transfer.import_rows(
                        admin_context(request), self.ref, records, write=True
                    )
            except (ValueError, errors.MetacoreError) as exc:
                self.message_user(request, getattr(exc, "message", str(exc)), messages.ERROR)
            else:
                level = messages.SUCCESS if not report.as_json().get("errors") else messages.WARNING
                self.message_user(request, f"import: {report.as_json()}", level)
                if level == messages.SUCCESS:
                    return HttpResponseRedirect(
                        reverse(
                            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                            current_app=self.admin_site.name,
                        )
                    )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import {self.resolved.spec.label}",
            "opts": self.opts,
            "report": report,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "metacore/admin_data/import.html", context)


def _confirmation(action) -> str:
    """The confirmation text the manifest declares for an action (SDK spellings)."""
    extra = action.model_extra or {}
    for key in ("confirm", "confirmation", "confirmMessage", "confirm_message"):
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value.get("message"):
            return str(value["message"])
    return ""


def _row_action(action):
    """A manifest row action as an admin action, dispatched like `POST .../action/<key>`:
    when it declares fields or a confirmation text, an intermediate page asks for them."""

    def run(model_admin, request, queryset):
        confirm = _confirmation(action)
        if (action.fields or confirm) and "_metacore_confirmed" not in request.POST:
            context = {
                **model_admin.admin_site.each_context(request),
                "title": action.label or action.key,
                "opts": model_admin.opts,
                "action": action,
                "confirm": confirm,
                "queryset": queryset,
                "action_name": request.POST.get("action", ""),
                "select_across": request.POST.get("select_across", "0"),
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            }
            return TemplateResponse(request, "metacore/admin_data/row_action.html", context)
        body = {f.key: request.POST.get(f"field_{f.key}", "") for f in action.fields}
        ctx = admin_context(request)
        for pk in queryset.values_list("pk", flat=True):
            try:
                status, result = _kernel().sandbox.run_action(ctx, model_admin.ref, str(pk), action.key, body)
            except errors.MetacoreError as exc:
                model_admin.message_user(request, f"{action.key} {pk}: {exc.message}", messages.ERROR)
                continue
            if result.get("success"):
                model_admin.message_user(request, f"{action.key} {pk}: done", messages.SUCCESS)
            else:
                model_admin.message_user(
                    request, f"{action.key} {pk}: {result['error']['message']}", messages.ERROR
                )
        return None

    run.__name__ = f"action_{action.key}"
    return admin.action(description=action.label or derive.humanize(action.key), permissions=["change"])(run)


def _reference_cell(field_name, label, target_spec):
    label_column = derive.label_column(target_spec)

    @admin.display(description=label, ordering=field_name)
    def cell(obj):
        try:
            target = getattr(obj, field_name)
        except ObjectDoesNotExist:
            return getattr(obj, f"{field_name}_id", None) or "-"
        if target is None:
            return "-"
        opts = target._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[target.pk])
        return format_html('<a href="{}">{}</a>', url, getattr(target, label_column, None) or target.pk)

    cell.__name__ = f"ref_{field_name}"
    return cell


def _label(model_class, spec):
    """`str(row)`: the row's label column, as the options derivation labels it."""
    column = derive.label_column(spec)
    if "__str__" not in model_class.__dict__:
        model_class.__str__ = lambda row: str(getattr(row, column, None) or row.pk)


def model_admin_for(resolved, site):
    """The ModelAdmin of one runtime class, from its table/modal metadata."""
    manifest, spec, model = resolved.manifest, resolved.spec, resolved.model_class
    table = derive.table_metadata(manifest, spec)
    names = field_names(spec)
    columns = {c.name: c for c in spec.columns}
    for column in spec.columns:
        if column.references is not None:
            target = manifest.model(column.references.table)
            if target is not None:
                _label(model._meta.get_field(names[column.name]).remote_field.model, target)
    _label(model, spec)

    list_display = []
    for entry in table.get("columns", ()):
        column = columns.get(entry.get("key"))
        if column is None or entry.get("hidden") or column.name in HIDDEN:
            continue
        if column.references is not None and manifest.model(column.references.table) is not None:
            list_display.append(
                _reference_cell(
                    names[column.name],
                    entry.get("label") or column.name,
                    manifest.model(column.references.table),
                )
            )
        else:
            list_display.append(names[column.name])
    static_options = {f.get("column") or f.get("key") for f in table.get("filters", ()) if f.get("options")}
    list_filter = []
    for column in spec.user_columns:
        if column.system or column.name in HIDDEN:
            continue
        kind = derive.filter_type(column)
        if column.references is not None:
            list_filter.append((names[column.name], RelatedOnlyFieldListFilter))
        elif kind in ("boolean", "date_range"):
            list_filter.append(names[column.name])
        elif column.name in static_options or derive.cell_style(column) == "status":
            list_filter.append((names[column.name], AllValuesFieldListFilter))

    # The form follows the modal metadata (the manifest's `modal` block over the derived one):
    # its field order and labels first, then any writable column it leaves out.
    modal = [f for f in derive.modal_metadata(manifest, spec).get("fields", ()) if isinstance(f, dict)]
    writable = [c.name for c in spec.columns if c.name not in derive.MANAGED and not c.system]
    ordered = [f["key"] for f in modal if f.get("key") in writable]
    editable = [names[c] for c in dict.fromkeys(ordered + writable)]
    readonly = [
        names[c.name] for c in spec.columns if (c.name in derive.MANAGED or c.system) and c.name not in HIDDEN
    ]
    references = [names[c.name] for c in spec.user_columns if c.references is not None and not c.system]
    attrs = {
        "resolved": resolved,
        "column_of_field": {names[c.name]: c.name for c in spec.columns},
        "form_labels": {
            names[f["key"]]: f["label"] for f in modal if f.get("key") in writable and f.get("label")
        },
        "list_display": list_display or ["__str__"],
        "list_filter": list_filter,
        "search_fields": [names[c] for c in derive.search_columns(spec) if c in names],
        "fields": editable + readonly,
        "readonly_fields": readonly,
        "autocomplete_fields": references,
        "ordering": ["-created_at"] if "created_at" in columns else [],
        "actions": [
            *AddonModelAdmin.actions,
            *(_row_action(a) for a in derive.model_actions(manifest, spec)),
        ],
    }
    admin_class = type(f"{spec.table.title()}Admin", (AddonModelAdmin,), attrs)
    return admin_class(model, site)
