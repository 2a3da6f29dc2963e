"""Encrypt secret settings stored in plaintext before secret settings became write-only."""
from django.db import migrations


def seal_plaintext_secrets(apps, schema_editor):
    from metacore.installer.secrets import seal_settings
    from metacore.manifest.model import Manifest

    Installation = apps.get_model("metacore", "Installation")
    for installation in Installation.objects.using(schema_editor.connection.alias).exclude(settings={}):
        try:
            manifest = Manifest.model_validate(installation.manifest)
        except ValueError:
            continue  # an unreadable stored manifest: nothing says which settings are secret
        sealed = seal_settings(manifest, installation.settings or {}, previous=installation.settings)
        if sealed != installation.settings:
            installation.settings = sealed
            installation.save(update_fields=["settings"])


class Migration(migrations.Migration):
    dependencies = [("metacore", "0002_management")]
    operations = [migrations.RunPython(seal_plaintext_secrets, migrations.RunPython.noop)]
