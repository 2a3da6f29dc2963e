"""A small addon, built as a typed Manifest, installed the way the installer lays it out
(tables, Installation row, auth permissions, registry revision bump) for the permission and
metadata tests."""
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F

from metacore.manifest.columns import system_columns
from metacore.manifest.model import Action, ActionField, Column, Manifest, Model, Reference
from metacore.models import Installation, RegistryState
from metacore.permissions.naming import MODEL_ACTIONS, model_permission
from metacore.schema import ddl
from metacore.schema.builder import build_addon_models


def model(key, table, columns, *, org_scoped=True, soft_delete=False, **extra):
    leading, trailing = system_columns(org_scoped, soft_delete)
    return Model(key=key, table=table, label=extra.pop("label", key), columns=(*leading, *columns, *trailing),
                 org_scoped=org_scoped, soft_delete=soft_delete, **extra)


def helpdesk_manifest(key="helpdesk", version="1.0.0", table_meta=None, extra_models=()):
    customers = model("Customers", "customers", (
        Column(name="name", type="string", size=80, required=True, label="Customer name"),
        Column(name="email", type="string", size=120),
    ))
    tickets = model("Tickets", "tickets", (
        Column(name="title", type="string", size=120, required=True),
        Column(name="status", type="string", size=20, required=True, has_default=True, default="open"),
        Column(name="priority", type="int"),
        Column(name="customer_id", type="uuid", references=Reference(table="customers")),
        Column(name="notes", type="text"),
        Column(name="due_on", type="date"),
        Column(name="billable", type="bool"),
        Column(name="amount", type="decimal", precision=10, scale=2),
        Column(name="tags", type="json"),
    ), soft_delete=True, label="Tickets", table_meta=table_meta)
    return Manifest(
        format="v3", key=key, name=key.title(), version=version,
        models=(tickets, customers, *extra_models),
        actions=(Action(key="close", model="Tickets", label="Close ticket", function="close",
                        fields=(ActionField(key="reason", label="Reason", required=True),)),),
    )


def install(manifest):
    with transaction.atomic():
        ddl.ensure_schema(manifest.key)
        built = build_addon_models(manifest, revision=1, vendor=connection.vendor)
        with ddl.schema_editor() as editor:
            ddl.create_tables(editor, built.classes.values())
        Installation.objects.create(key=manifest.key, name=manifest.name, version=manifest.version,
                                    manifest=manifest.model_dump(mode="json"))
        ctype = ContentType.objects.get_for_model(Installation)
        for spec in manifest.models:
            for action in MODEL_ACTIONS:
                codename = model_permission(manifest.key, spec.table, action)
                Permission.objects.get_or_create(content_type=ctype, codename=codename, defaults={"name": codename})
        _bump()


def uninstall(manifest):
    with transaction.atomic():
        built = build_addon_models(manifest, revision=1, vendor=connection.vendor)
        with ddl.schema_editor() as editor:
            ddl.drop_tables(editor, built.classes.values())
        ddl.drop_schema(manifest.key)
        Installation.objects.filter(key=manifest.key).delete()
        _bump()


def _bump():
    state, _ = RegistryState.objects.get_or_create(pk=1)
    RegistryState.objects.filter(pk=1).update(revision=F("revision") + 1)
