"""Helpers shared by the hub tests: registered addons without tables, users with tenants and
grants, and a WebsocketCommunicator on the real ASGI application."""

import json
import uuid

from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import F

from metacore.manifest.model import Column, Manifest, Model
from metacore.models import Installation, RegistryState, TenantMembership
from metacore.permissions.naming import model_permission


def register_addon(key, models, capabilities=(), org_scoped=True):
    """An enabled Installation whose manifest declares `models` [(Key, table), ...], with the
    CRUD permission rows the installer creates; the hub needs no table for this."""
    specs = tuple(
        Model(
            key=model_key,
            table=table,
            label=table,
            org_scoped=org_scoped,
            columns=(
                Column(name="id", type="uuid", primary_key=True, system=True),
                Column(name="organization_id", type="uuid", system=True),
                Column(name="name", type="string", size=80),
            ),
        )
        for model_key, table in models
    )
    manifest = Manifest(
        format="flat",
        key=key,
        name=key.title(),
        version="1.0.0",
        models=specs,
        capabilities=tuple({"kind": k, "target": t} for k, t in capabilities),
    )
    Installation.objects.create(
        key=key,
        name=key.title(),
        version="1.0.0",
        manifest=manifest.model_dump(mode="json"),
        capabilities=[{"kind": k, "target": t} for k, t in capabilities],
    )
    content_type = ContentType.objects.get_for_model(Installation)
    for _, table in models:
        for action in ("read", "create", "update", "delete"):
            codename = model_permission(key, table, action)
            Permission.objects.get_or_create(
                codename=codename, content_type=content_type, defaults={"name": codename}
            )
    state, _ = RegistryState.objects.get_or_create(pk=1)
    RegistryState.objects.filter(pk=1).update(revision=F("revision") + 1)


def make_user(username, tenant=None, grants=()):
    user = get_user_model().objects.create_user(username, password="pw")
    if tenant is not None:
        TenantMembership.objects.create(user=user, organization_id=tenant)
    for codename in grants:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def token_for(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


def new_tenant():
    return uuid.uuid4()


def communicator(path="/api/ws", headers=None):
    from sandbox_project.asgi import application

    return WebsocketCommunicator(application, path, headers=headers or [])


async def receive_json(comm, timeout=2):
    return json.loads(await comm.receive_from(timeout=timeout))


async def close_of(comm, timeout=2):
    """The close message the server sent (after the accept), asserting no frame came first."""
    output = await comm.receive_output(timeout=timeout)
    assert output["type"] == "websocket.close", f"expected a close, got {output}"
    return output
