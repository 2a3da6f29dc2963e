"""GET /api/schema/: the installed addons' dynamic endpoints with their real column types,
behind the API's authentication; the Swagger UI and Redoc pages over it."""

import json

import pytest
from django.contrib.auth.models import User
from drf_spectacular.validation import validate_schema
from metadata_fixtures import fresh_registry, helpdesk_manifest, install, uninstall, upgrade  # noqa: F401 (autouse fixture)
from rest_framework.test import APIClient

import metacore

pytestmark = pytest.mark.django_db


def user_client():
    client = APIClient()
    client.force_authenticate(User.objects.get_or_create(username="reader")[0])
    return client


def schema():
    response = user_client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_its_pages_need_the_apis_authentication_unless_public(path, settings):
    assert APIClient().get(path).status_code == 401
    settings.METACORE = {**settings.METACORE, "PUBLIC_SCHEMA": True}
    assert APIClient().get(path).status_code == 200


def test_document_has_title_version_description_and_no_generic_model_routes():
    document = schema()
    assert document["info"]["title"] == "metacore API" and document["info"]["version"] == metacore.__version__
    assert "Token" in document["info"]["description"]
    assert not [p for p in document["paths"] if "dynamic/{model}" in p]  # documented per model instead
    descriptions = [
        op.get("description", "")
        for item in document["paths"].values()
        for op in item.values()
        if isinstance(op, dict)
    ]
    assert not [d for d in descriptions if "Mix into an APIView" in d]


def test_swagger_and_redoc_pages_use_the_sidecar_assets_not_a_cdn():
    client = user_client()
    swagger = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in swagger
    assert "/api/schema/" in swagger and "cdn" not in swagger.lower()
    redoc = client.get("/api/redoc/").content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in redoc


def test_installed_addon_appears_with_real_types_and_goes_after_uninstall():
    assert "/api/dynamic/helpdesk.tickets" not in schema()["paths"]
    manifest = helpdesk_manifest()
    install(manifest)
    try:
        document = schema()
        paths, components = document["paths"], document["components"]["schemas"]
        assert set(paths["/api/dynamic/helpdesk.tickets"]) == {"get", "post"}
        assert {"get", "put", "patch", "delete"} <= set(paths["/api/dynamic/helpdesk.tickets/{id}"])
        assert "post" in paths["/api/dynamic/helpdesk.tickets/{id}/action/close"]
        assert "/api/dynamic/helpdesk.customers" in paths

        listing = paths["/api/dynamic/helpdesk.tickets"]["get"]
        params = {p["name"] for p in listing["parameters"]}
        assert {"page", "per_page", "sortBy", "order", "search", "f_title", "f_priority"} <= params
        items = listing["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"][
            "items"
        ]
        assert items == {"$ref": "#/components/schemas/HelpdeskTickets"}
        created = paths["/api/dynamic/helpdesk.tickets"]["post"]
        assert created["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/HelpdeskTicketsInput"
        }
        assert "201" in created["responses"] and "403" in created["responses"]
        schemes = {name for requirement in listing["security"] for name in requirement}
        assert {"cookieAuth", "tokenAuth"} <= schemes <= set(document["components"]["securitySchemes"])

        row = components["HelpdeskTickets"]["properties"]
        assert row["title"] == {"type": "string", "maxLength": 120}
        assert row["priority"] == {"type": "integer", "format": "int32", "nullable": True}
        assert row["amount"]["type"] == "string" and row["amount"]["format"] == "decimal"
        assert row["due_on"] == {"type": "string", "format": "date", "nullable": True}
        assert row["billable"] == {"type": "boolean", "nullable": True}
        assert row["customer_id"]["format"] == "uuid"
        assert row["id"]["format"] == "uuid" and row["id"]["readOnly"] is True
        assert row["created_at"]["format"] == "date-time" and row["created_at"]["readOnly"] is True
        body = components["HelpdeskTicketsInput"]
        assert body["required"] == ["title"]  # status has a default
        assert set(body["example"]) == set(body["properties"]) and set(
            components["HelpdeskTickets"]["example"]
        ) == set(row)
        assert body["example"]["title"] == "text" and body["example"]["customer_id"].count("-") == 4
        assert "id" not in body["properties"] and "organization_id" not in body["properties"]
        assert components["MetacoreError"]["required"] == ["success", "message"]
        validate_schema(document)  # a valid OpenAPI 3 document, addon paths included
    finally:
        uninstall(manifest)
    after = schema()
    assert not [p for p in after["paths"] if "helpdesk" in p]
    assert "HelpdeskTickets" not in after["components"]["schemas"]


def test_schema_is_generated_once_per_registry_version(monkeypatch):
    from metacore.api.openapi import MetacoreSchemaGenerator

    calls = []
    original = MetacoreSchemaGenerator.get_schema
    monkeypatch.setattr(
        MetacoreSchemaGenerator,
        "get_schema",
        lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw),
    )
    first = schema()
    generated = len(calls)
    assert schema() == first and len(calls) == generated  # served from the cache
    manifest = helpdesk_manifest(key="cached")
    install(manifest)
    try:
        assert "/api/dynamic/cached.tickets" in schema()["paths"]
        assert len(calls) == generated + 1
    finally:
        uninstall(manifest)


def test_upgrade_regenerates_the_components():
    manifest = helpdesk_manifest()
    install(manifest)
    try:
        assert "channel" not in schema()["components"]["schemas"]["HelpdeskTickets"]["properties"]
        newer = helpdesk_manifest(version="1.1.0")
        newer["model_definitions"][0]["columns"].append({"name": "channel", "type": "string", "size": 30})
        upgrade(newer)
        row = schema()["components"]["schemas"]["HelpdeskTickets"]["properties"]
        assert row["channel"] == {"type": "string", "nullable": True, "maxLength": 30}
    finally:
        uninstall(manifest)
