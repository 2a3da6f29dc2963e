"""metacore: a Django reusable app that hosts Metacore addons."""

__version__ = "0.1.0"
# The upstream kernel contract version this port speaks (manifests' `kernel` ranges check it).
KERNEL_VERSION = "3.0.0"


def register_model(model, **options):
    """Serve the host's own Django `model` through the dynamic API, metadata, options,
    search, import/export and the hub, like an addon model (docs/embedding.md).

    Options: `key` (default: the model name), `label`, `fields` / `exclude`, `search`,
    `tenant_field` (default `organization_id` when the model has it; None: unscoped).
    Returns the model. Call it from your app's `AppConfig.ready()`.
    """
    from metacore.schema.host import host_models

    return host_models.register(model, **options)
