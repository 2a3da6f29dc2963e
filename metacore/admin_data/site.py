"""The admin site that serves addon models next to the host's registered ones.

Addon models exist only at runtime, so they are never `register()`ed: `addon_admins()`
builds their ModelAdmins from the model registry whenever its revision moves (one
primary-key read per admin request), and `urls` is a live pattern list that rebuilds
itself and resets Django's URL caches for the admin namespace at that moment, so
`reverse("admin:<app>_<model>_changelist")` and resolving both follow installs in
every process without a restart.
"""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import clear_url_caches, get_resolver, include, path, re_path, reverse
from django.urls.resolvers import URLResolver
from django.views.decorators.common import no_append_slash

from metacore.admin_data.tenancy import admin_context, pick_organization


class LivePatterns:
    """The site's URL patterns, recomputed when the addon registry changes. Django's
    resolver keeps this object as its pattern list and iterates it on every resolve.

    Freshness is checked by the views, on their thread: the site's pages through
    `addon_admins()`, a URL nothing matched in `MetacoreAdminSite.catch_all_view` (a model
    installed since), an addon model's page in `AddonModelAdmin.get_urls` (upgraded or
    removed since)."""

    def __init__(self, site):
        self.site = site
        self._patterns = None
        self._revision = object()

    def __iter__(self):
        return iter(self.current())

    def __reversed__(self):
        return reversed(self.current())

    def __len__(self):
        return len(self.current())

    def current(self) -> list:
        """The patterns as last refreshed: iterating never touches the database (Django
        resolves inside the event loop under ASGI; system checks and schema generators
        walk the patterns before or without a database)."""
        if self._patterns is None:
            with self.site._lock:
                if self._patterns is None:
                    self._patterns = self.site.get_urls()
        return self._patterns

    def refresh(self) -> bool:
        """Rebuild when the registry moved (one query); True when the patterns changed."""
        revision = self.site.addon_revision()
        if revision == self._revision:
            return False
        with self.site._lock:
            if revision == self._revision:
                return False
            self._patterns = self.site.get_urls()
            self._revision = revision
            self._reset_resolvers()
        return True

    def _reset_resolvers(self):
        """Forget the reverse/namespace tables built from the previous patterns."""

        def walk(resolver):
            for pattern in resolver.url_patterns:
                if not isinstance(pattern, URLResolver):
                    continue
                if pattern.urlconf_name is self:
                    pattern._populated = False
                    pattern._reverse_dict, pattern._namespace_dict, pattern._app_dict = {}, {}, {}
                    pattern._callback_strs = set()
                else:
                    walk(pattern)

        walk(get_resolver())
        clear_url_caches()


class AddonAutocompleteView(AutocompleteJsonView):
    """Django's autocomplete, finding addon source models through the site (they are not
    in the global app registry); results come from the target admin's tenant-scoped
    queryset."""

    def process_request(self, request):
        source = self.admin_site.addon_model(request.GET.get("app_label"), request.GET.get("model_name"))
        if source is None:
            return super().process_request(request)
        try:
            field = source._meta.get_field(request.GET.get("field_name", ""))
            remote = field.remote_field.model
            target_admin = self.admin_site.get_model_admin(remote)
        except (FieldDoesNotExist, AttributeError, NotRegistered) as exc:
            raise PermissionDenied from exc
        return request.GET.get("term", ""), target_admin, field, remote._meta.pk.attname

    def has_perm(self, request, obj=None):
        return self.model_admin.has_view_permission(request, obj=obj)


class MetacoreAdminSite(admin.AdminSite):
    def __init__(self, name="admin"):
        super().__init__(name)
        self._lock = threading.RLock()
        self._addon_revision = None
        self._addon_admins: dict = {}
        self._built = WeakKeyDictionary()  # runtime class -> its ModelAdmin (kept across revisions)
        self._live = LivePatterns(self)

    # -- addon models -----------------------------------------------------------------
    def addon_revision(self):
        """The registry revision the addon admins are built for (rebuilt when it moved)."""
        from metacore.kernel import get_kernel

        registry = get_kernel().registry
        revision = registry.revision
        if revision != self._addon_revision:
            with self._lock:
                if revision != self._addon_revision:
                    self._rebuild(registry.all_models(), revision)
        return self._addon_revision

    def _rebuild(self, resolved_models, revision):
        from metacore.admin_data.model_admin import model_admin_for

        admins = {}
        for resolved in resolved_models:
            model_admin = self._built.get(resolved.model_class)
            if model_admin is None:
                model_admin = self._built[resolved.model_class] = model_admin_for(resolved, self)
            admins[resolved.model_class] = model_admin
        self._addon_admins, self._addon_revision = admins, revision

    def addon_admins(self) -> dict:
        """The current addon admins, with URL patterns to match (called from views)."""
        self._live.refresh()
        return self._addon_admins

    def addon_model(self, app_label, model_name):
        for model in self.addon_admins():
            if model._meta.app_label == app_label and model._meta.model_name == model_name:
                return model
        return None

    # Runtime classes carry their manifest spec; only they are looked up in the registry
    # (never at import time, when `@admin.register` calls these).
    def is_registered(self, model):
        if hasattr(model, "metacore_spec"):
            return model in self.addon_admins()
        return super().is_registered(model)

    def get_model_admin(self, model):
        if hasattr(model, "metacore_spec") and model in self.addon_admins():
            return self.addon_admins()[model]
        return super().get_model_admin(model)

    # -- URLs ---------------------------------------------------------------------------
    @property
    def urls(self):
        return self._live, "admin", self.name

    def get_urls(self):
        urls = super().get_urls()
        catch_all = [urls.pop()] if self.final_catch_all_view else []
        admins = self._addon_admins  # as last refreshed (LivePatterns decides when)
        for model, model_admin in admins.items():
            urls.append(path(f"{model._meta.app_label}/{model._meta.model_name}/", include(model_admin.urls)))
        labels = sorted({model._meta.app_label for model in admins})
        if labels:
            urls.append(
                re_path(
                    r"^(?P<app_label>" + "|".join(labels) + ")/$",
                    self.admin_view(self.app_index),
                    name="app_list",
                )
            )
        urls.append(
            path("organization/", self.admin_view(self.organization_view), name="metacore_organization")
        )
        return urls + catch_all

    @no_append_slash
    def catch_all_view(self, request, url):
        """A URL no pattern matched may belong to an addon installed since this process
        last looked: refresh, and serve it when it now resolves elsewhere."""
        if self._live.refresh():
            from metacore.admin_data.model_admin import redispatch

            return redispatch(request)
        return super().catch_all_view(request, url)

    def autocomplete_view(self, request):
        """Django's autocomplete; on PostgreSQL under row-level security, with the acting
        organization set for the query (as the pages have it)."""
        from django.db import connection, transaction

        from metacore.store import rls

        view = AddonAutocompleteView.as_view(admin_site=self)
        tenant = admin_context(request).tenant
        if not (tenant and rls.binds(connection)):
            return view(request)
        with transaction.atomic():
            rls.set_tenant(connection, tenant)
            return view(request)

    # -- index --------------------------------------------------------------------------
    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label) + self._addon_apps(request, app_label)
        return sorted(app_list, key=lambda app: str(app["name"]).lower())

    def _addon_apps(self, request, app_label):
        apps = {}
        for model, model_admin in self.addon_admins().items():
            label = model._meta.app_label
            if app_label and label != app_label:
                continue
            perms = model_admin.get_model_perms(request)
            if True not in perms.values():
                continue
            info = (label, model._meta.model_name)
            entry = {
                "model": model,
                "name": model_admin.resolved.spec.label or model_admin.resolved.spec.table,
                "object_name": model._meta.object_name,
                "perms": perms,
                "view_only": not perms.get("change"),
                "admin_url": reverse("admin:{}_{}_changelist".format(*info), current_app=self.name),
                "add_url": reverse("admin:{}_{}_add".format(*info), current_app=self.name)
                if perms.get("add")
                else None,
            }
            app = apps.setdefault(
                label,
                {
                    "name": model_admin.resolved.manifest.name,
                    "app_label": label,
                    "app_url": reverse("admin:app_list", kwargs={"app_label": label}, current_app=self.name),
                    "has_module_perms": True,
                    "models": [],
                },
            )
            app["models"].append(entry)
        for app in apps.values():
            app["models"].sort(key=lambda m: str(m["name"]))
        return list(apps.values())

    def each_context(self, request):
        context = super().each_context(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            context["metacore_organization"] = admin_context(request).tenant
        return context

    # -- a superuser's organization -----------------------------------------------------
    def organization_view(self, request):
        """Superusers pick the organization the addon pages act for; staff users see theirs."""
        from metacore.models import TenantMembership

        if request.method == "POST":
            if not request.user.is_superuser:
                raise PermissionDenied
            try:
                chosen = pick_organization(request, request.POST.get("organization", ""))
            except ValueError:
                self.message_user(request, "not an organization id (a UUID)", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"acting for organization {chosen}" if chosen else "acting for your own organization",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:metacore_organization", current_app=self.name))
        known = (
            TenantMembership.objects.order_by("organization_id")
            .values_list("organization_id", flat=True)
            .distinct()
        )
        context = {
            **self.each_context(request),
            "title": "Organization",
            "organizations": [str(o) for o in known] if request.user.is_superuser else [],
            "current": admin_context(request).tenant,
        }
        request.current_app = self.name
        return TemplateResponse(request, "metacore/admin_data/organization.html", context)

    @staticmethod
    def message_user(request, message, level):
        messages.add_message(request, level, message, fail_silently=True)
