"""`settings.METACORE`: documented defaults, dotted-path imports, clear errors.

Shaped like DRF's `api_settings`: `metacore_settings.NAME` reads the host's value or the
default; names listed in IMPORT_STRINGS are imported on first access.
"""

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULTS = {
    # Bundles
    "ALLOW_UNSIGNED_BUNDLES": False,
    "TRUSTED_KEYS": [],  # ed25519 public keys (base64 or PEM) allowed to sign bundles
    "BUNDLE_DIR": None,  # catalog directory of installable bundles
    "DATA_DIR": None,  # where extracted bundles and the wasm cache live; default: BASE_DIR/var
    "MAX_BUNDLE_BYTES": 50 * 1024 * 1024,
    # Installation secrets and webhooks
    "SECRET_MASTER_KEY": None,  # encrypts installation secrets so outbound webhooks can be signed
    "SECRETS_KEY": None,  # encrypts secret settings at rest (default: derived from Django's SECRET_KEY)
    "WEBHOOK_MAX_SKEW_SECONDS": 300,  # accepted clock skew (and nonce lifetime) of signed webhooks
    "WEBHOOK_TIMEOUT_S": 15.0,  # total budget of one outbound webhook call (upstream's default)
    "WEBHOOK_HOST_NAME": "metacore",  # X-Metacore-Host of outbound webhooks
    "WEBHOOK_MAX_ATTEMPTS": 5,  # attempts of an addon's manifest subscription before dead-lettering
    "WEBHOOK_RETRY_BASE_S": 4.0,  # first retry delay; then x4 per attempt, with jitter
    "WEBHOOK_RETRY_MAX_S": 3600.0,  # cap of one retry delay
    "WEBHOOK_RECOVER_AFTER_S": 60.0,  # a pending delivery this overdue lost its task: requeued
    # Store
    "DEFAULT_PER_PAGE": 20,
    "MAX_PER_PAGE": 200,
    "PUBLIC_SCHEMA": False,  # serve /schema/, /docs/ and /redoc/ to anonymous users (default: the API's auth)
    "TENANT_RESOLVER": "metacore.store.tenancy.default_tenant_resolver",
    "ORG_CONFIG_RESOLVER": None,  # (organization_id, key) -> str | None, for `$org.<key>` validators
    "IDEMPOTENCY_CACHE": "default",  # Django cache alias keeping Idempotency-Key answers
    "IDEMPOTENCY_TTL_S": 24 * 3600,
    # Security
    "ENFORCER_DEFAULT_MODE": "enforce",
    "HTTP_RESOLVER": "socket.getaddrinfo",
    "HTTP_ALLOWED_NETWORKS": [],  # CIDRs exempt from the SSRF guard (tests: ["127.0.0.1/32"]); keep empty
    "HTTP_MAX_REDIRECTS": 5,
    "HTTP_TIMEOUT_S": 10.0,
    "HTTP_MAX_BYTES": 5 * 1024 * 1024,
    "AUDIT_CAPABILITY_ALLOWS": False,  # also audit allowed capability checks (volume)
    # Metrics (GET <api>/metrics, Prometheus text format)
    "METRICS_PUBLIC": False,  # True: anyone may scrape (else staff users or METRICS_TOKEN)
    "METRICS_TOKEN": None,  # a scraper's `Authorization: Bearer <token>`
    # Audit
    "AUDIT_SINKS": ["metacore.audit.sinks.LogSink", "metacore.audit.sinks.DatabaseSink"],
    "AUDIT_READS": False,
    # Sandbox
    "WASM_FUEL": 2_000_000_000,
    "WASM_DEFAULT_MEMORY_MB": 64,
    "WASM_DEFAULT_TIMEOUT_MS": 10_000,
    # Hub
    "HUB_COALESCE_MS": 100,
    "HUB_MAX_BACKLOG": 500,
    "HUB_MAX_FRAME_BYTES": 64 * 1024,
    "HUB_MAX_MODELS_PER_CONNECTION": 100,
    "HUB_PRESENCE_TTL_S": 60,  # a socket's presence row outlives a dead process by at most this
    "HUB_RECHECK_SECONDS": 3,  # open sockets re-verify credentials and grants at most this old
    "HUB_ALLOWED_ORIGINS": None,  # None: same origin as the Host, or ALLOWED_HOSTS; else patterns
    "HUB_WS_URL": None,  # the WebSocket URL clients are told (None: /api/ws on the request's own host)
    # Kernel parts a host may replace
    "KERNEL_CLASS": "metacore.kernel.Kernel",
}

IMPORT_STRINGS = {"TENANT_RESOLVER", "KERNEL_CLASS", "HTTP_RESOLVER", "ORG_CONFIG_RESOLVER"}


class MetacoreSettings:
    def __init__(self, defaults=None):
        self.defaults = defaults or DEFAULTS
        self._cached = set()

    @property
    def user_settings(self):
        return getattr(settings, "METACORE", {}) or {}

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"Invalid metacore setting: {name!r}")
        value = self.user_settings.get(name, self.defaults[name])
        if name in IMPORT_STRINGS and isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ImportError(f"METACORE[{name!r}] = {value!r} cannot be imported: {exc}") from exc
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def reload(self):
        for name in self._cached:
            delattr(self, name)
        self._cached.clear()


metacore_settings = MetacoreSettings()


def _reload(*, setting, **kwargs):
    if setting == "METACORE":
        metacore_settings.reload()


setting_changed.connect(_reload)


def data_dir(subdir: str = ""):
    """METACORE['DATA_DIR'] (default BASE_DIR/var), or a folder inside it; created if missing."""
    from pathlib import Path

    base = metacore_settings.DATA_DIR or Path(getattr(settings, "BASE_DIR", ".")) / "var"
    path = Path(base) / subdir
    path.mkdir(parents=True, exist_ok=True)
    return path
