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
from metacore.errors import InvalidInput, MetacoreError, NotFound
from metacore.installer import catalog, management
from metacore.kernel import get_kernel
from metacore.manifest.model import Manifest
from metacore.models import Installation

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


def _enabled_manifests() -> list[Manifest]:
    rows = Installation.objects.filter(state=Installation.State.ENABLED).order_by("key")
    return [Manifest.model_validate(row.manifest) for row in rows]


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
        management.require_manager(self.kernel, request.user, action, key)

    def installation_response(self, request, installation, http_status=status.HTTP_200_OK, **extra):
        body = wire.installation(
            installation, organization_id=_tenant(request), manager=management.can_manage(request.user)
        )
        return Response({**body, **extra}, status=http_status)


def _catalog_entry(item, installations) -> dict:
    installed = installations.get(item.key)
    return {
        "manifest": wire.flat_manifest(item.manifest)
        if item.manifest
        else wire.raw_flat_manifest(item.raw_manifest),
        "installable": item.installable,
        "entitled": True,
        "installed": installed is not None,
        "enabled": installed is not None and installed.state == Installation.State.ENABLED,
        "installed_version": installed.version if installed else None,
        "problems": list(item.problems),
    }


def _active_installations() -> dict:
    return {i.key: i for i in Installation.objects.exclude(state=Installation.State.UNINSTALLED)}


@_schema("[CatalogEntry]")
class CatalogView(ManagementView):
    def get(self, request):
        installations = _active_installations()
        return Response([_catalog_entry(item, installations) for item in catalog.list_items()])


@_schema("CatalogEntry")
class CatalogDetailView(ManagementView):
    def get(self, request, key):
        return Response(
            _catalog_entry(
                catalog.get_item(key, request.query_params.get("version")), _active_installations()
            )
        )


@_schema("[Installation]")
class InstallationListView(ManagementView):
    def get(self, request):
        tenant = _tenant(request)
        rows = self.kernel.installer.list(include_uninstalled=False)
        manager = management.can_manage(request.user)
        return Response([wire.installation(row, organization_id=tenant, manager=manager) for row in rows])


@_schema("201 Installation with the one-time secret; DELETE answers 204")
class InstallationView(ManagementView):
    """POST installs (catalog, or multipart `bundle`); DELETE uninstalls (`?drop=true`)."""

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def post(self, request, key):
        self.manage(request, "installing addons", key)
        data = _options_data(request)
        options = management.install_options(data)
        upload = request.FILES.get("bundle")
        if upload is not None:
            with management.uploaded_bundle(upload) as path:
                bundle = management.open_checked(path, key)
                result, secret = management.install(self.kernel, bundle, actor=request.user, options=options)
        else:
            bundle = management.catalog_bundle(key, data.get("version"))
            result, secret = management.install(self.kernel, bundle, actor=request.user, options=options)
        migrations = {m.name: m.status for m in result.migrations}
        return self.installation_response(
            request,
            result.installation,
            status.HTTP_201_CREATED,
            secret=secret,
            tables=result.created_tables,
            adopted_tables=result.adopted_tables,
            migrations=migrations,
            warnings=result.warnings,
        )

    def delete(self, request, key):
        self.manage(request, "uninstalling addons", key)
        self.kernel.installer.uninstall(key, drop_data=_flag(request, "drop"), actor=request.user)
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
        self.manage(request, "enabling addons", key)
        return self.installation_response(request, self.kernel.installer.enable(key, actor=request.user))


@_schema("Installation")
class DisableView(ManagementView):
    def post(self, request, key):
        self.manage(request, "disabling addons", key)
        return self.installation_response(request, self.kernel.installer.disable(key, actor=request.user))


@_schema("Installation")
class SettingsView(ManagementView):
    def post(self, request, key):
        self.manage(request, "changing addon settings", key)
        installation = management.update_settings(self.kernel, key, request.data, actor=request.user)
        return self.installation_response(request, installation)


@_schema("Installation with the new secret")
class SecretView(ManagementView):
    def post(self, request, key):
        self.manage(request, "rotating addon secrets", key)
        installation, secret = management.rotate_secret(self.kernel, key, actor=request.user)
        return self.installation_response(request, installation, secret=secret)


@_schema("the upgrade plan (dry_run=1) or Installation with the applied plan")
class UpgradeView(ManagementView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def post(self, request, key):
        self.manage(request, "upgrading addons", key)
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
            actor=request.user,
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
        return Response(build_navigation(_enabled_manifests(), request.user, self.kernel.permissions))


@_schema("[Manifest] (flat), header X-Metacore-Kernel-Version")
class ManifestsView(BootView):
    def get(self, request):
        if self.anonymous(request):
            return Response([], headers={KERNEL_VERSION_HEADER: metacore.KERNEL_VERSION})
        lite = _flag(request, "lite")
        body = [wire.flat_manifest(manifest, lite=lite) for manifest in _enabled_manifests()]
        return Response(body, headers={KERNEL_VERSION_HEADER: metacore.KERNEL_VERSION})


@_schema("the file", request=None)
class FrontendFileView(ManagementView):
    """An enabled addon's `frontend/` files. Paths are resolved inside the bundle's
    frontend directory; anything escaping it (`..`, absolute, links) is a 404."""

    def get(self, request, key, path):
        installation = Installation.objects.filter(key=key, state=Installation.State.ENABLED).first()
        if installation is None or not installation.bundle_path:
            raise NotFound(f"addon {key!r} is not installed and enabled")
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
