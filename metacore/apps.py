from django.apps import AppConfig


class MetacoreConfig(AppConfig):
    name = "metacore"
    verbose_name = "Metacore addons"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Wiring only: system checks and signal receivers. Runtime addon models are built
        # lazily from the stored manifests on first use (no database access at import).
        from metacore.host import checks  # noqa: F401
        from metacore.host.telemetry import setup_from_env
        from metacore.hub.publisher import connect_receivers
        from metacore.integrations.deliveries import connect_receivers as connect_deliveries
        from metacore.integrations.eventlog import connect_receivers as connect_eventlog

        connect_receivers()
        connect_deliveries()
        connect_eventlog()
        setup_from_env()  # OpenTelemetry from OTEL_* variables; nothing when none is set
