"""Installation rows as the installer writes them, for tests that need an installed addon
without a bundle: a valid manifest snapshot, and the registry revision moved in the same
transaction, so the registry's read model (and so the enforcer) serves the change."""

from django.db import transaction

from metacore.manifest.model import Column, Manifest, Model
from metacore.models import Installation
from metacore.schema.registry import bump_registry_revision


def record_installation(key, capabilities=(), tables=()):
    """An enabled installation of `key` granted `capabilities`, declaring tables `tables`."""
    manifest = Manifest(
        format="flat",
        key=key,
        name=key,
        version="1.0.0",
        models=tuple(
            Model(
                key=table.title(),
                table=table,
                label=table,
                columns=(Column(name="id", type="uuid", primary_key=True, system=True),),
            )
            for table in tables
        ),
    )
    with transaction.atomic():
        installation = Installation.objects.create(
            key=key,
            name=key,
            version="1.0.0",
            manifest=manifest.model_dump(mode="json"),
            capabilities=list(capabilities),
        )
        bump_registry_revision()
    return installation


def record_change(installation):
    """Store a changed installation row as an upgrade or uninstall does: with the revision moved."""
    with transaction.atomic():
        installation.save()
        bump_registry_revision()
