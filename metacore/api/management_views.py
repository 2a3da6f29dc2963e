"""Addon management API under `/api/metacore/`: the surface `@asteby/metacore-sdk`'s
MarketplaceClient calls. Thin translation of HTTP onto the installer, catalog and
management services; every shape is in docs/management-api.md."""

import mimetypes
from pathlib import Path

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

import metacore
from metacore import limits
from metacore.api import wire
from metacore.api.errors import EnvelopeErrorsMixin
from metacore.api.navigation import build_navigation
from metacore.api.parsers import JSONParser
from metacore.conf import metacore_settings
from metacore.context import CallContext
from metacore.errors import Forbidden, InvalidInput, MetacoreError, NotFound
from metacore.installer import catalog, management
from metacore.kernel import get_kernel
from metacore.manifest.model import Manifest

KERNEL_VERSION_HEADER = "X-Metacore-Kernel-Version"
IMMUTABLE = "public, max-age=31536000, immutable"
TRUE_VALUES = {"1", "true", "yes", "on"}


def _flag(request, name) -> bool:
    return str(request.query_params.get(name, "")).strip().lower() in TRUE_VALUES


def _tenant(request):
    try:
        return metacore_settings.TENANT_RESOLVER(request.user, request)
    except MetacoreError:
        return None


def _enabled_manifests(request) -> list[Manifest]:
    """The manifests of the addons enabled for the caller's organization."""
    tenant = _tenant(request)
    return [addon.manifest for addon in get_kernel().registry.installed_addons() if addon.enabled_for(tenant)]


def _schema(answer: str, request=OpenApiTypes.OBJECT):
    """OpenAPI for a management view: free-form JSON described in words (the exact shapes are
    the SDK's and live in docs/management-api.md); `[Thing]` answers are arrays."""
    body = {"type": "array", "items": {"type": "object"}} if answer.startswith("[") else OpenApiTypes.OBJECT
    return extend_schema(
        tags=["metacore management"],
        request=request,
        responses={200: OpenApiResponse(body, description=answer)},
    )


class ManagementView(EnvelopeErrorsMixin, APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @property
    def kernel(self):
        return get_kernel()

    def manage(self, request, action, key=""):
        """Refuse a caller who may not manage addons; the organization the call acts for."""
        management.require_manager(self.kernel.audit, request.user, action, key)
        return self.organization(request)

    def organization(self, request):
        """The organization the call acts for (see `management.acting_organization`)."""
        return management.acting_organization(
            request.user, _tenant(request), request.query_params.get("organization")
        )

    def viewing(self, request):
        return management.viewing_organization(
            request.user, _tenant(request), request.query_params.get("organization")
        )

    def installation_response(
        self, request, installation, http_status=status.HTTP_200_OK, *, organization=None, **extra
    ):
        own = installation.organizations.filter(organization=organization).first() if organization else None
        body = wire.installation(
            installation,
            organization_id=organization or _tenant(request),
            manager=management.can_manage(request.user),
            own=own,
        )
        return Response({**body, **extra}, status=http_status)


def _catalog_entry(item, installed: dict, organization) -> dict:
    """A catalog item, installed and enabled as the organization has it."""
    addon = installed.get(item.key)
    return {
        "manifest": wire.flat_manifest(item.manifest)
        if item.manifest
        else wire.raw_flat_manifest(item.raw_manifest),
        "installable": item.installable,
        "entitled": True,
        "installed": addon is not None,
        "enabled": addon is not None and addon.enabled_for(organization),
        "installed_version": addon.version if addon else None,
        "problems": list(item.problems),
    }


class CatalogBase(ManagementView):
    def entries(self, request, items) -> list[dict]:
        organization = self.viewing(request)
        installed = {a.key: a for a in self.kernel.registry.installed_addons(organization)}
        return [_catalog_entry(item, installed, organization) for item in items]


@_schema("[CatalogEntry]")
class CatalogView(CatalogBase):
    def get(self, request):
        return Response(self.entries(request, catalog.list_items()))


@_schema("CatalogEntry")
class CatalogDetailView(CatalogBase):
    def get(self, request, key):
        return Response(
            self.entries(request, [catalog.get_item(key, request.query_params.get("version"))])[0]
        )


@_schema("[Installation]")
class InstallationListView(ManagementView):
    def get(self, request):
        organization = self.viewing(request)
        shown = organization if isinstance(organization, str) else _tenant(request)
        manager = management.can_manage(request.user)
        return Response(
            [
                wire.installation(row, organization_id=shown, manager=manager, own=own)
                for row, own in self.kernel.installer.installations_for(organization)
            ]
        )


@_schema("201 Installation with the one-time secret; DELETE answers 204")
class InstallationView(ManagementView):
    """POST installs (catalog, or multipart `bundle`); DELETE uninstalls (`?drop=true`)."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def post(self, request, key):
        organization = self.manage(request, "installing addons", key)
        data = _options_data(request)
        options = management.install_options(data)
        upload = request.FILES.get("bundle")
        kwargs = {
            "context": CallContext.from_request(request),
            "options": options,
            "organization": organization,
        }
        if upload is not None:
            with management.uploaded_bundle(upload) as path:
                bundle = management.open_checked(path, key)
                result, secret = management.install(self.kernel.installer, bundle, **kwargs)
        else:
            bundle = management.catalog_bundle(key, data.get("version"))
            result, secret = management.install(self.kernel.installer, bundle, **kwargs)
        migrations = {m.name: m.status for m in result.migrations}
        return self.installation_response(
            request,
            result.installation,
            status.HTTP_201_CREATED,
            organization=organization,
            secret=secret,
            tables=result.created_tables,
            adopted_tables=result.adopted_tables,
            migrations=migrations,
            warnings=result.warnings,
        )

    def delete(self, request, key):
        organization = self.manage(request, "uninstalling addons", key)
        self.kernel.installer.uninstall(
            key,
            drop_data=_flag(request, "drop"),
            context=CallContext.from_request(request),
            organization=organization,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _options_data(request) -> dict:
    """JSON body, or multipart fields whose values are JSON text."""

    if not hasattr(request.data, "getlist"):
        if not isinstance(request.data, dict):
            raise InvalidInput("the body must be a JSON object", errors={"body": ["must be an object"]})
        return request.data
    data = {}
    for name in ("settings", "credentials", "selected_tools", "version", "assign_organization"):
        value = request.data.get(name)
        if value in (None, ""):
            continue
        if name in ("version", "assign_organization"):
            data[name] = value
            continue
        try:
            data[name] = limits.loads(value)
        except ValueError:
            raise InvalidInput(f"{name} must be JSON", errors={name: ["must be JSON text"]}) from None
    return data


@_schema("Installation")
class EnableView(ManagementView):
    def post(self, request, key):
        organization = self.manage(request, "enabling addons", key)
        installation = self.kernel.installer.enable(
            key, context=CallContext.from_request(request), organization=organization
        )
        return self.installation_response(request, installation, organization=organization)


@_schema("Installation")
class DisableView(ManagementView):
    def post(self, request, key):
        organization = self.manage(request, "disabling addons", key)
        installation = self.kernel.installer.disable(
            key, context=CallContext.from_request(request), organization=organization
        )
        return self.installation_response(request, installation, organization=organization)


@_schema("Installation")
class SettingsView(ManagementView):
    def post(self, request, key):
        organization = self.manage(request, "changing addon settings", key)
        kernel = self.kernel
        installation = management.update_settings(
            kernel.installer,
            kernel.registry,
            kernel.audit,
            key,
            request.data,
            context=CallContext.from_request(request),
            organization=organization,
        )
        return self.installation_response(request, installation, organization=organization)


@_schema("Installation with the new secret")
class SecretView(ManagementView):
    def post(self, request, key):
        organization = self.manage(request, "rotating addon secrets", key)
        installation, secret = management.rotate_secret(
            self.kernel.installer,
            self.kernel.audit,
            key,
            context=CallContext.from_request(request),
            organization=organization,
        )
        return self.installation_response(request, installation, organization=organization, secret=secret)


@_schema("the upgrade plan (dry_run=1) or Installation with the applied plan")
class UpgradeView(ManagementView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def post(self, request, key):
        if self.manage(request, "upgrading addons", key) is not None:
            raise Forbidden(
                "permission denied: an upgrade changes the addon for every organization; host staff"
                " (or a manager on a host without organizations) upgrade it"
            )
        data = _options_data(request)
        upload = request.FILES.get("bundle")
        if upload is not None:
            with management.uploaded_bundle(upload) as path:
                return self._upgrade(request, management.open_checked(path, key))
        return self._upgrade(request, management.catalog_bundle(key, data.get("version")))

    def _upgrade(self, request, bundle):
        installer = self.kernel.installer
        force = _flag(request, "force")
        organization = _options_data(request).get("assign_organization")
        if _flag(request, "dry_run"):
            return Response(installer.plan(bundle, force=force, assign_organization=organization).as_dict())
        result = installer.upgrade(
            bundle,
            context=CallContext.from_request(request),
            allow_destructive=_flag(request, "allow_destructive"),
            force=force,
            assign_organization=organization,
        )
        return self.installation_response(
            request,
            result.installation,
            plan=result.plan.as_dict(),
            registry_revision=result.registry_revision,
        )


class BootView(ManagementView):
    """What the SDK fetches while it boots, before anyone signs in: without credentials it
    answers `[]` (as upstream) rather than 401; a bad credential is still 401."""

    permission_classes = []

    @staticmethod
    def anonymous(request):
        return request.user is None or not request.user.is_authenticated


@_schema("[NavGroup]")
class NavigationView(BootView):
    def get(self, request):
        if self.anonymous(request):
            return Response([])
        return Response(build_navigation(_enabled_manifests(request), request.user, self.kernel.permissions))


@_schema("[Manifest] (flat), header X-Metacore-Kernel-Version")
class ManifestsView(BootView):
    def get(self, request):
        if self.anonymous(request):
            return Response([], headers={KERNEL_VERSION_HEADER: metacore.KERNEL_VERSION})
        lite = _flag(request, "lite")
        body = [wire.flat_manifest(manifest, lite=lite) for manifest in _enabled_manifests(request)]
        return Response(body, headers={KERNEL_VERSION_HEADER: metacore.KERNEL_VERSION})


@_schema("the file", request=None)
class FrontendFileView(ManagementView):
    """An enabled addon's `frontend/` files. Paths are resolved inside the bundle's
    frontend directory; anything escaping it (`..`, absolute, links) is a 404."""

    def get(self, request, key, path):
        registry = self.kernel.registry
        if not registry.enabled_for(key, _tenant(request)) or not registry.installed(key).bundle_path:
            raise NotFound(f"addon {key!r} is not installed and enabled")
        installation = registry.installed(key)
        root = (Path(installation.bundle_path) / "frontend").resolve()
        try:
            target = (root / path).resolve()
            found = target.is_relative_to(root) and target.is_file()
        except (OSError, ValueError):  # NUL bytes, over-long names
            found = False
        if not found:
            raise NotFound(f"addon {key!r} has no frontend file {path!r}")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        response = FileResponse(target.open("rb"), content_type=content_type)
        response["Cache-Control"] = IMMUTABLE
        response["ETag"] = f'"{installation.bundle_sha256[:32]}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
