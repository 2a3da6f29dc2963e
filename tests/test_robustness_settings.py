"""What a host must set for SQLite and JSON errors (docs/embedding.md), and the system
checks that say so (issue 12)."""

import warnings


def test_the_sandbox_uses_the_sqlite_helper_and_the_middleware(settings):
    from metacore.settings import sqlite_options

    options = settings.DATABASES["default"].get("OPTIONS", {})
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert {k: options.get(k) for k in sqlite_options()} == sqlite_options()
    middleware = settings.MIDDLEWARE
    errors = middleware.index("metacore.api.middleware.ApiErrorsMiddleware")
    assert errors < middleware.index("django.contrib.sessions.middleware.SessionMiddleware")


def test_system_checks_warn_about_bare_sqlite_and_a_missing_middleware(settings, tmp_path):
    from metacore.checks import check_robustness
    from metacore.settings import sqlite_options

    with warnings.catch_warnings():  # overriding DATABASES warns; the check only reads it
        warnings.simplefilter("ignore")
        settings.DATABASES = {
            **settings.DATABASES,
            "extra": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")},
        }
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("metacore.")]
    assert {w.id for w in check_robustness(None)} == {"metacore.W040", "metacore.W041"}
    settings.DATABASES["extra"]["OPTIONS"] = {**sqlite_options()}  # the docs/embedding.md snippet
    settings.MIDDLEWARE.insert(1, "metacore.api.middleware.ApiErrorsMiddleware")
    assert [w.id for w in check_robustness(None)] == []
