"""OpenAPI (drf-spectacular) with every installed addon's dynamic endpoints.

The URL patterns only know `dynamic/{model}` (those views set `schema = None`: they are
left out of the document); `MetacoreSchemaGenerator` adds, per enabled addon model, concrete paths
`dynamic/<addon>.<table>` (list, create, retrieve, update, partial update, delete, row
actions) and components built from the column types (`ColumnType.openapi`), each with an
example. The view caches the document under the metadata version token, so an install,
upgrade or uninstall (in any process) regenerates it on the next request.

The schema and its two pages (Swagger UI at `docs/`, Redoc at `redoc/`, assets from
drf-spectacular-sidecar: no CDN) follow the API's authentication: anonymous requests get 401
unless `METACORE["PUBLIC_SCHEMA"]` is True.

A host's `manage.py spectacular` includes the addons too with
`SPECTACULAR_SETTINGS["DEFAULT_GENERATOR_CLASS"] = "metacore.api.openapi.MetacoreSchemaGenerator"`.
"""

import inspect
import re
import threading
from typing import Any

from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

import metacore
from metacore.api.errors import EnvelopeErrorsMixin
from metacore.conf import metacore_settings
from metacore.kernel import get_kernel
from metacore.metadata.derive import model_actions
from metacore.schema.types import get_type
from metacore.store.query import OPERATORS

ERROR_COMPONENT = "MetacoreError"
SHAPE_PARAMS = (
    ("fields", {"type": "string"}, "comma list of the columns to return (`id` always comes)"),
    ("expand", {"type": "string"}, "comma list of reference columns whose row to embed (one level)"),
)
LIST_PARAMS = (
    ("page", {"type": "integer", "minimum": 1}, "1-based page number"),
    ("per_page", {"type": "integer", "minimum": 1}, "rows per page (clamped to the documented maximum)"),
    ("sortBy", {"type": "string"}, "comma list of columns; `-col` sorts descending"),
    ("order", {"type": "string", "enum": ["asc", "desc"]}, "direction for sortBy"),
    ("search", {"type": "string"}, "contains-match over the model's search columns"),
    (
        "count",
        {"type": "string", "enum": ["exact", "estimated", "none"]},
        "meta.total: COUNT(*) (default), PostgreSQL's planner estimate when large, or none (null)",
    ),
    (
        "cursor",
        {"type": "string"},
        "keyset pages: empty for the first, then meta.next_cursor (instead of page; sort keys never null)",
    ),
    *SHAPE_PARAMS,
)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _prefix() -> str:
    """Where `metacore.urls` is mounted (`/api/` in the sandbox project)."""
    try:
        return reverse("metacore-schema")[: -len("schema/")]
    except NoReverseMatch:
        return "/api/"


DESCRIPTION = (
    "Every installed addon's tables as REST resources under `dynamic/<addon>.<table>`, in the "
    "Metacore envelopes `{success, data, meta}`; plus metadata, options, search, row actions, "
    "the capability enforcer and addon management (`metacore/...`). Authenticate with "
    "`Authorization: Token <key>` or a session cookie."
)


def column_schema(column) -> dict:
    schema = get_type(column.type).openapi(column)
    if column.size and get_type(column.type).text_like:
        schema["maxLength"] = column.size
    if column.label:
        schema["title"] = column.label
    return schema


def column_example(column):
    """The column's literal default, else a value of its type."""
    if column.has_default and column.default_fn is None and column.default is not None:
        return column.default
    value = get_type(column.type).example
    if isinstance(value, str) and column.size:
        value = value[: column.size]
    return value


def model_components(resolved) -> dict:
    """`<Addon><Model>` (a row as the API returns it) and `<Addon><Model>Input` (a body)."""
    name = _pascal(resolved.installation_key) + _pascal(resolved.spec.key)
    row: dict[str, Any] = {"type": "object", "properties": {}}
    body: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    required = []
    for column in resolved.spec.columns:
        schema = column_schema(column)
        row.setdefault("example", {})[column.name] = column_example(column)
        if column.system:
            row["properties"][column.name] = {**schema, "readOnly": True}
            continue
        row["properties"][column.name] = schema
        body["properties"][column.name] = schema
        body.setdefault("example", {})[column.name] = column_example(column)
        if column.required and not column.has_default and column.default_fn is None:
            required.append(column.name)
    if required:
        body["required"] = required
    return {name: row, f"{name}Input": body}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _envelope(data_schema, meta=None):
    properties = {"success": {"type": "boolean", "enum": [True]}, "data": data_schema}
    if meta:
        properties["meta"] = meta
    return {"type": "object", "properties": properties, "required": ["success", "data"]}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def model_paths(resolved, prefix) -> dict:
    spec = resolved.spec
    name = _pascal(resolved.installation_key) + _pascal(spec.key)
    model_ref = f"{resolved.installation_key}.{spec.table}"
    tag = f"{resolved.installation_key} addon"
    errors = {
        str(code): _json(_ref(ERROR_COMPONENT), text)
        for code, text in (
            (400, "invalid input"),
            (401, "not authenticated"),
            (403, "permission denied"),
            (404, "not found"),
        )
    }
    id_param = {"name": "id", "in": "path", "required": True, "schema": column_schema(spec.column("id"))}
    list_params = [
        {"name": n, "in": "query", "required": False, "schema": s, "description": d}
        for n, s, d in LIST_PARAMS
    ]
    operators = ", ".join(sorted(OPERATORS))
    list_params += [
        {
            "name": f"f_{c.name}",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"filter `<op>:<value>` ({operators}); values parsed as {get_type(c.type).name}",
        }
        for c in spec.columns
        if c.name != "deleted_at"
    ]
    page_meta = {
        "type": "object",
        "properties": {
            **{k: {"type": "integer", "nullable": True} for k in ("total", "page", "last_page")},
            "per_page": {"type": "integer"},
            "next_cursor": {"type": "string", "nullable": True, "description": "with `cursor` only"},
        },
    }
    row = _envelope(_ref(name))

    def op(action, summary, **extra):
        return {
            "operationId": f"{resolved.installation_key}_{spec.table}_{action}",
            "summary": summary,
            "tags": [tag],
            **extra,
        }

    body = {"required": True, "content": {"application/json": {"schema": _ref(f"{name}Input")}}}
    partial = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"allOf": [_ref(f"{name}Input")], "description": "any subset of the columns"}
            }
        },
    }
    base = f"{prefix}dynamic/{model_ref}"
    paths = {
        base: {
            "get": op(
                "list",
                f"List {spec.label}",
                parameters=list_params,
                responses={
                    "200": _json(_envelope({"type": "array", "items": _ref(name)}, page_meta)),
                    **errors,
                },
            ),
            "post": op(
                "create",
                f"Create a {spec.label} row",
                requestBody=body,
                responses={
                    "201": _json(row, "Created"),
                    **errors,
                    "409": _json(_ref(ERROR_COMPONENT), "conflict"),
                },
            ),
        },
        base + "/{id}": {
            "parameters": [id_param],
            "get": op(
                "retrieve",
                f"Get a {spec.label} row",
                responses={"200": _json(row), **errors},
                parameters=[
                    {"name": n, "in": "query", "required": False, "schema": s, "description": d}
                    for n, s, d in SHAPE_PARAMS
                ],
            ),
            "put": op(
                "update",
                f"Update a {spec.label} row (missing keys keep their value)",
                requestBody=partial,
                responses={"200": _json(row), **errors},
            ),
            "patch": op(
                "partial_update",
                f"Partially update a {spec.label} row",
                requestBody=partial,
                responses={"200": _json(row), **errors},
            ),
            "delete": op(
                "destroy",
                f"Delete a {spec.label} row" + (" (soft delete)" if spec.soft_delete else ""),
                responses={
                    "200": _json({"type": "object", "properties": {"success": {"type": "boolean"}}}),
                    **errors,
                },
            ),
        },
    }
    for action in model_actions(resolved.manifest, spec):
        paths[f"{base}/{{id}}/action/{action.key}"] = {
            "parameters": [id_param],
            "post": op(
                f"action_{action.key}",
                action.label or f"Run action {action.key}",
                requestBody={
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                responses={
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "success": {"type": "boolean"},
                                "data": {},
                                "error": {"type": "object"},
                                "meta": {"type": "object"},
                            },
                        }
                    ),
                    **errors,
                },
            ),
        }
    return paths


def _api_security(paths, prefix):
    """The security requirements spectacular derived for metacore's own views (the host's
    authentication classes), reused for the per-model paths."""
    for path, item in paths.items():
        if path.startswith(f"{prefix}metadata/"):
            for operation in item.values():
                if isinstance(operation, dict) and "security" in operation:
                    return operation["security"]
    return None


# Views without a docstring of their own inherit this one (inspect.getdoc); it describes
# the implementation, not the operation, so it is dropped from the document.
_MIXIN_DOC = inspect.getdoc(EnvelopeErrorsMixin)


def _describe(schema):
    """Title, version (the package's) and description, unless the host set its own."""
    info = schema.setdefault("info", {})
    if not spectacular_settings.TITLE:
        info["title"] = "metacore API"
    if spectacular_settings.VERSION in ("0.0.0", None):
        info["version"] = metacore.__version__
    if not spectacular_settings.DESCRIPTION:
        info["description"] = DESCRIPTION


class MetacoreSchemaGenerator(SchemaGenerator):
    def get_schema(self, request=None, public=False):
        schema = super().get_schema(request=request, public=public)
        _describe(schema)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components[ERROR_COMPONENT] = {
            "type": "object",
            "properties": {
                "success": {"type": "boolean", "enum": [False]},
                "message": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["success", "message"],
        }
        prefix = _prefix()
        paths = schema.setdefault("paths", {})
        security = _api_security(paths, prefix)
        for item in paths.values():
            for operation in item.values():
                if isinstance(operation, dict) and operation.get("description") == _MIXIN_DOC:
                    del operation["description"]
        for resolved in get_kernel().registry.served_models():
            components.update(model_components(resolved))
            for path, item in model_paths(resolved, prefix).items():
                if security is not None:
                    for method, operation in item.items():
                        if method != "parameters":
                            operation["security"] = security
                paths[path] = item
        return schema


class SchemaAccess(EnvelopeErrorsMixin):
    """The API's authentication classes; 401 for anonymous unless METACORE['PUBLIC_SCHEMA']."""

    def get_permissions(self):
        return [AllowAny() if metacore_settings.PUBLIC_SCHEMA else IsAuthenticated()]


def _sidecar(path):
    return static(f"drf_spectacular_sidecar/{path}")


class MetacoreSwaggerView(SchemaAccess, SpectacularSwaggerView):
    """Swagger UI over `schema/`, its assets served by this host (drf-spectacular-sidecar)."""

    url_name = "metacore-schema"
    title = "metacore API"

    @staticmethod
    def _swagger_ui_resource(filename):
        return _sidecar(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return _sidecar("swagger-ui-dist/favicon-32x32.png")


class MetacoreRedocView(SchemaAccess, SpectacularRedocView):
    """Redoc over `schema/`, its script served by this host (drf-spectacular-sidecar)."""

    url_name = "metacore-schema"
    title = "metacore API"

    @staticmethod
    def _redoc_standalone():
        return _sidecar("redoc/bundles/redoc.standalone.js")


class MetacoreSchemaView(SchemaAccess, SpectacularAPIView):
    generator_class = MetacoreSchemaGenerator
    _lock = threading.Lock()
    _cached = (None, None)  # (key, schema): only the current version is kept

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (get_kernel().metadata.version(), version, request.GET.get("lang"), self.serve_public)
        cached_key, schema = MetacoreSchemaView._cached
        if cached_key != key:
            generator = self.generator_class(
                urlconf=self.urlconf, api_version=version, patterns=self.patterns
            )
            schema = generator.get_schema(request=request, public=self.serve_public)
            with self._lock:
                MetacoreSchemaView._cached = (key, schema)
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
