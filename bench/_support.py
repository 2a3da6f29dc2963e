"""Shared set-up for bench modules: Django with the sandbox settings on a throw-away test
database (SQLite or PostgreSQL from DATABASE_URL), destroyed at exit; and a timer."""

import atexit
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

_ready = False


def setup_django():
    """Configure Django once per process and switch to a fresh test database. DEBUG is
    off unless DJANGO_DEBUG asks for it, as a production host runs (with it on, every query
    goes through Django's logging cursor and into `connection.queries`)."""
    global _ready
    if _ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    import django

    django.setup()
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    atexit.register(connection.creation.destroy_test_db, old_name, verbosity=0)
    _ready = True


def per_call(fn, *, number=200, repeat=5, warmup=20):
    """Median seconds per call of `fn` over `repeat` batches of `number` calls."""
    for _ in range(warmup):
        fn()
    batches = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        batches.append((time.perf_counter() - start) / number)
    return statistics.median(batches)


def paired(fn_a, fn_b, *, number=50, repeat=7, warmup=10):
    """Seconds per call of `fn_a` and of `fn_b`: the best of `repeat` batches (as `timeit`
    advises: slower batches measure other load on the machine, not the code), the batches
    interleaved so that such load hits both sides alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = [], []
    for _ in range(repeat):
        for fn, batches in ((fn_a, a), (fn_b, b)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            batches.append((time.perf_counter() - start) / number)
    return min(a), min(b)


def vendor():
    from django.db import connection

    return connection.vendor


def items_manifest(addon, name, extra_columns=(), capabilities=()):
    """A v3 manifest with one tenant-scoped `items` table (id, organization_id, title) and
    the bench's own extra columns and capabilities."""
    columns = [
        {"name": "id", "type": "uuid", "primary_key": True, "default": "gen_random_uuid()"},
        {"name": "organization_id", "type": "uuid", "not_null": True},
        {"name": "title", "type": "varchar", "size": 200, "not_null": True},
        *extra_columns,
    ]
    return {
        "apiVersion": "asteby.com/v3",
        "kind": "Addon",
        "metadata": {"key": addon, "name": name, "version": "1.0.0"},
        "compatibility": {"requires": [{"key": "kernel", "version": ">=3.0.0 <4.0.0"}]},
        "models": [{"key": "Items", "table": "items", "label": "Items", "columns": columns}],
        "capabilities": list(capabilities),
    }


def install_manifest(manifest):
    """Install `manifest` as a bundle folder of its own; returns the kernel."""
    from metacore.kernel import get_kernel

    folder = Path(tempfile.mkdtemp(prefix="metacore-bench-"))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    kernel = get_kernel()
    kernel.installer.install(folder)
    return kernel


def database_url():
    """The URL of the current (test) database, for a server process the bench starts."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
