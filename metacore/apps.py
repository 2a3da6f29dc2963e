from django.apps import AppConfig


class MetacoreConfig(AppConfig):
    name = "metacore"
    verbose_name = "Metacore addons"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Wiring only: system checks and signal receivers. Runtime addon models are built
        # lazily from the stored manifests on first use (no database access at import).
        from metacore import (
            checks,  # noqa: F401
            events,
        )
        from metacore.integrations.eventlog import connect_receivers as connect_eventlog
        from metacore.permissions.access import connect_receivers as connect_access
        from metacore.telemetry import setup_from_env

        events.data_changed.connect(_hub_data, dispatch_uid="metacore.hub.data")
        events.addon_event.connect(_hub_addon_event, dispatch_uid="metacore.hub.addon_event")
        events.addon_changed.connect(_hub_lifecycle, dispatch_uid="metacore.hub.lifecycle")
        events.data_changed.connect(_deliver_data, dispatch_uid="metacore.deliveries.data")
        events.addon_event.connect(_deliver_addon_event, dispatch_uid="metacore.deliveries.addon")
        connect_eventlog()
        connect_access()
        setup_from_env()  # OpenTelemetry from OTEL_* variables; nothing when none is set


# Signal receivers: an edge, so they reach the services through the kernel of the moment.
def _kernel():
    from metacore.kernel import get_kernel

    return get_kernel()


def _hub_data(sender, event, **kwargs):
    _kernel().hub.publish_data(event)


def _hub_addon_event(sender, event, **kwargs):
    _kernel().hub.publish_addon_event(event)


def _hub_lifecycle(sender, event, **kwargs):
    _kernel().hub.publish_lifecycle(event)


def _deliver_data(sender, event, **kwargs):
    _kernel().deliveries.publish_event("data", event)


def _deliver_addon_event(sender, event, **kwargs):
    _kernel().deliveries.publish_event("addon", event)
