"""Example host project: a plain Django project that embeds metacore.

Everything metacore needs is the INSTALLED_APPS entry, the URL include and the ASGI app;
the rest is an ordinary Django settings module.
"""

import hashlib
import os
from pathlib import Path

import dj_database_url

from metacore.settings import sqlite_options

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sandbox-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "daphne",
    "metacore.admin_data.apps.MetacoreAdminConfig",  # django.contrib.admin + addon data (docs/admin.md)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "metacore",
]

MIDDLEWARE = [
    "metacore.api.request_id.RequestIdMiddleware",  # X-Request-ID: read or made, echoed
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files (the admin's CSS) under Daphne
    "metacore.api.middleware.ApiErrorsMiddleware",  # JSON errors under /api/ (docs/api.md)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "sandbox_project.urls"
ASGI_APPLICATION = "sandbox_project.asgi.application"
WSGI_APPLICATION = "sandbox_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

(BASE_DIR / "var").mkdir(exist_ok=True)  # the embedded SQLite database and addon data live here
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        # Persistent connections (one per worker thread), checked before reuse so a restarted
        # database costs one failed check, not a failed request.
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL, a busy timeout and BEGIN IMMEDIATE: concurrent writers queue (docs/embedding.md).
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **sqlite_options()}
    # A file (not Django's in-memory default) so tests can check what a second process sees.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test_{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Object permissions on addon rows (see metacore.permissions.guardian).
GUARDIAN_GET_CONTENT_TYPE = "metacore.permissions.guardian.get_content_type"

# JWT for SDK frontends (metacore.api.jwt_urls); a 256-bit signing key derived from SECRET_KEY.
SIMPLE_JWT = {"SIGNING_KEY": hashlib.sha256(f"jwt:{SECRET_KEY}".encode()).hexdigest()}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "metacore.api.authentication.CachedTokenAuthentication",
        # `Authorization: Bearer <jwt>`, what the SDK's API client sends (metacore.api.jwt_urls)
        "metacore.api.authentication.CachedJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# Redis pub/sub: the hub's per-process fanout receives one message per process per event, and
# pub/sub streams them (a burst arrives in one read) where the list-based RedisChannelLayer
# spends four round trips on each (docs/realtime.md, "Scale-out with Redis").
CHANNEL_LAYERS = (
    {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
        }
    }
    if os.environ.get("REDIS_URL")
    else {"default": {"BACKEND": "metacore.hub.layers.InMemoryChannelLayer"}}
)

# Background work (webhook deliveries, schedules): Django's Tasks API, on the database.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

METACORE = {
    # The sandbox installs its unsigned example bundles; a production host keeps this False.
    "ALLOW_UNSIGNED_BUNDLES": True,
    # The catalog served at /api/metacore/catalog (METACORE_BUNDLE_DIR lets tests point a server elsewhere).
    "BUNDLE_DIR": Path(os.environ.get("METACORE_BUNDLE_DIR", BASE_DIR / "examples")),
    "DATA_DIR": BASE_DIR / "var",
    # `make run` serves HTTP (granian) and the hub (Daphne) on two ports: clients are told the
    # hub's URL, and the hub accepts pages of the HTTP port's origin (docs/embedding.md).
    "HUB_WS_URL": os.environ.get("METACORE_HUB_WS_URL"),
    "HUB_ALLOWED_ORIGINS": os.environ.get("METACORE_HUB_ALLOWED_ORIGINS", "").split() or None,
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# WhiteNoise serves the apps' static files straight from their folders (no collectstatic):
# this is a development project; a deployment sets STATIC_ROOT and runs collectstatic.
WHITENOISE_USE_FINDERS = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "metacore": {"handlers": ["console"], "level": os.environ.get("METACORE_LOG_LEVEL", "WARNING")}
    },
}
