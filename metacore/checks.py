"""System checks (`manage.py check`): misconfiguration found before the first request."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("metacore")
def check_settings(app_configs, **kwargs):
    from metacore.conf import DEFAULTS, metacore_settings

    errors = []
    user = getattr(settings, "METACORE", {}) or {}
    if not isinstance(user, dict):
        return [Error("settings.METACORE must be a dict", id="metacore.E001")]
    for name in user:
        if name not in DEFAULTS:
            errors.append(
                Error(
                    f"Unknown METACORE setting {name!r}",
                    hint=f"Known: {', '.join(sorted(DEFAULTS))}",
                    id="metacore.E002",
                )
            )
    for name in ("TENANT_RESOLVER", "KERNEL_CLASS", "HTTP_RESOLVER"):
        try:
            getattr(metacore_settings, name)
        except ImportError as exc:
            errors.append(Error(str(exc), id="metacore.E003"))
    if user.get("ENFORCER_DEFAULT_MODE", "enforce") not in ("enforce", "shadow"):
        errors.append(
            Error("METACORE['ENFORCER_DEFAULT_MODE'] must be 'enforce' or 'shadow'", id="metacore.E004")
        )
    if "rest_framework" not in settings.INSTALLED_APPS:
        errors.append(Error("metacore needs 'rest_framework' in INSTALLED_APPS", id="metacore.E005"))
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "")
    if not any(v in engine for v in ("sqlite3", "postgresql")):
        errors.append(
            Warning(f"metacore is tested on SQLite and PostgreSQL, not {engine}", id="metacore.W001")
        )
    return errors


@register("metacore")
def check_guardian(app_configs, **kwargs):
    """Object permissions on addon rows need guardian to use metacore's content type resolver."""
    if "guardian" not in settings.INSTALLED_APPS:
        return []
    wanted = "metacore.permissions.guardian.get_content_type"
    if getattr(settings, "GUARDIAN_GET_CONTENT_TYPE", None) != wanted:
        return [
            Warning(
                "django-guardian object permissions on addon rows need GUARDIAN_GET_CONTENT_TYPE",
                hint=f'GUARDIAN_GET_CONTENT_TYPE = "{wanted}" (docs/permissions.md)',
                id="metacore.W010",
            )
        ]
    return []


@register("metacore")
def check_trusted_keys(app_configs, **kwargs):
    """Every METACORE['TRUSTED_KEYS'] entry must be an ed25519 public key (docs/bundles.md)."""
    from metacore.conf import metacore_settings
    from metacore.installer.signing import load_public_key

    keys = metacore_settings.TRUSTED_KEYS or []
    if isinstance(keys, (str, bytes)):
        return [Error("METACORE['TRUSTED_KEYS'] must be a list of keys, not one string", id="metacore.E020")]
    errors = []
    for index, entry in enumerate(keys):
        try:
            load_public_key(entry)
        except ValueError as exc:
            errors.append(
                Error(
                    f"METACORE['TRUSTED_KEYS'][{index}] is not an ed25519 public key: {exc}",
                    hint="PEM, or the 32 raw bytes as base64 or hex (manage.py metacore_keygen prints one)",
                    id="metacore.E020",
                )
            )
    return errors


@register("metacore")
def check_egress_and_audit(app_configs, **kwargs):
    """HTTP_ALLOWED_NETWORKS must be CIDRs and, being a hole in the SSRF guard, is flagged;
    every AUDIT_SINKS entry must import (docs/security.md, docs/audit.md)."""
    import ipaddress

    from django.utils.module_loading import import_string

    from metacore.conf import metacore_settings

    errors = []
    networks = metacore_settings.HTTP_ALLOWED_NETWORKS or []
    for entry in networks:
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError) as exc:
            errors.append(
                Error(
                    f"METACORE['HTTP_ALLOWED_NETWORKS'] entry {entry!r} is not a network: {exc}",
                    id="metacore.E030",
                )
            )
    if networks:
        errors.append(
            Warning(
                "METACORE['HTTP_ALLOWED_NETWORKS'] lets addons reach these private networks",
                hint="meant for tests against a local server; keep it empty in production",
                id="metacore.W030",
            )
        )
    for entry in metacore_settings.AUDIT_SINKS or []:
        if isinstance(entry, str):
            try:
                import_string(entry)
            except ImportError as exc:
                errors.append(
                    Error(
                        f"METACORE['AUDIT_SINKS'] entry {entry!r} cannot be imported: {exc}",
                        id="metacore.E031",
                    )
                )
        elif not callable(entry):
            errors.append(
                Error(f"METACORE['AUDIT_SINKS'] entry {entry!r} is not callable", id="metacore.E031")
            )
    return errors


@register("metacore")
def check_robustness(app_configs, **kwargs):
    """File SQLite databases need WAL, a busy timeout and IMMEDIATE transactions to hold
    concurrent writes; API errors need the middleware to be JSON outside the views."""
    from metacore.settings import sqlite_options

    wanted = sqlite_options()
    warnings = []
    for alias, database in settings.DATABASES.items():
        name = str(database.get("NAME") or "")
        if (
            not database.get("ENGINE", "").endswith("sqlite3")
            or name in ("", ":memory:")
            or "mode=memory" in name
        ):
            continue
        options = database.get("OPTIONS") or {}
        missing = [key for key in ("transaction_mode", "init_command") if options.get(key) != wanted[key]]
        if float(options.get("timeout") or 5) < 5:
            missing.append("timeout")
        if missing:
            warnings.append(
                Warning(
                    f"SQLite database {alias!r} will fail concurrent writes with 'database is locked' "
                    f"(OPTIONS lack {', '.join(missing)})",
                    hint=f'DATABASES["{alias}"]["OPTIONS"] = {{**DATABASES["{alias}"].get("OPTIONS", {{}}), '
                    "**metacore.settings.sqlite_options()} (docs/embedding.md)",
                    id="metacore.W040",
                )
            )
    if "metacore.api.middleware.ApiErrorsMiddleware" not in settings.MIDDLEWARE:
        warnings.append(
            Warning(
                "API errors outside metacore's views (unknown /api/ routes, 500s, oversized "
                "bodies) will be HTML, not JSON envelopes",
                hint='add "metacore.api.middleware.ApiErrorsMiddleware" near the top of MIDDLEWARE',
                id="metacore.W041",
            )
        )
    return warnings


@register("metacore")
def check_rest_framework(app_configs, **kwargs):
    """What the README and docs/embedding.md rely on: token and session authentication (curl
    with `Authorization: Token`, the browser and the API docs pages) and drf-spectacular's
    schema class (without it /api/schema/ answers 500). daphne's own check (daphne.E001)
    catches daphne listed after staticfiles."""
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.authentication import SessionAuthentication, TokenAuthentication
    from rest_framework.settings import api_settings

    errors = []
    classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    for wanted in (TokenAuthentication, SessionAuthentication):
        if not any(issubclass(c, wanted) for c in classes):
            errors.append(
                Warning(
                    f"REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'] has no {wanted.__name__}",
                    hint=f'add "{wanted.__module__}.{wanted.__name__}" (docs/embedding.md); the README\'s '
                    "`Authorization: Token` requests and the API docs pages rely on it",
                    id="metacore.W002",
                )
            )
    if (
        any(issubclass(c, TokenAuthentication) for c in classes)
        and "rest_framework.authtoken" not in settings.INSTALLED_APPS
    ):
        errors.append(
            Error(
                "TokenAuthentication needs 'rest_framework.authtoken' in INSTALLED_APPS", id="metacore.E006"
            )
        )
    schema_class = api_settings.DEFAULT_SCHEMA_CLASS
    if not (isinstance(schema_class, type) and issubclass(schema_class, AutoSchema)):
        errors.append(
            Error(
                f"REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] is {getattr(schema_class, '__qualname__', schema_class)}, "
                "not drf-spectacular's: /api/schema/ cannot be generated",
                hint='"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema" (docs/embedding.md)',
                id="metacore.E007",
            )
        )
    for app in ("drf_spectacular", "drf_spectacular_sidecar"):
        if app not in settings.INSTALLED_APPS:
            errors.append(
                Warning(
                    f"{app!r} is not in INSTALLED_APPS: the API docs pages (/api/docs/, /api/redoc/) "
                    "cannot render",
                    id="metacore.W003",
                )
            )
    return errors


@register("metacore", "database")
def check_sql_confinement(app_configs, databases=None, **kwargs):
    """PostgreSQL: addon SQL is confined by per-addon roles, which the database user must be
    allowed to create (CREATEROLE); without it wasm db_* imports and bundle SQL are refused
    (docs/security.md). Runs with `manage.py check --database default` and `migrate`."""
    from django.db import connections

    from metacore.schema.roles import can_confine

    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor == "postgresql" and not can_confine(connection):
            warnings.append(
                Warning(
                    f"database {alias!r}: the user may not create roles, so addon SQL cannot be confined;"
                    " wasm db_query/db_exec and bundle SQL migrations will be refused",
                    hint="ALTER ROLE <user> CREATEROLE (docs/security.md, 'What the host grants')",
                    id="metacore.W050",
                )
            )
    return warnings


@register("metacore")
def check_host_models(app_configs, **kwargs):
    """Host models registered with `metacore.register_model` that cannot be served (left
    out of the API, with an error in the log, until fixed)."""
    from metacore.schema.host import host_models

    return [
        Error(f"host model {key!r} cannot be served: {problem}", id="metacore.E060")
        for key, problem in host_models.problems().items()
    ]
