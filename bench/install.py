"""Installing a generated 50-table x 20-column manifest, against Django's own `migrate` of an
equivalent generated app (same tables, columns, indexes and foreign keys), in the same run,
on SQLite and on PostgreSQL.

Each database is measured in a child process (the generated app must be in INSTALLED_APPS
before Django starts), on a throw-away test database. Rounds alternate the two sides; each
is timed from the call to its return, with Django already set up: `installer.install()`
(bundle checks, parse, DDL, Installation row, 200 permission rows, commit) against
`call_command("migrate", "benchapp")` (graph loading, DDL, migration record, post_migrate
content types and 200 permissions). Between rounds both are undone, untimed. Reported:
median seconds of each side and `install / migrate` (goal: <= 1.0).

PostgreSQL comes from DATABASE_URL when it names one, else BENCH_POSTGRES_URL
(default postgres://postgres@127.0.0.1:5432/metacore_bench).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLES, ROUNDS, KEY, APP = 50, 3, "benchinstall", "benchapp"
# 17 user columns (+ id, created_at, updated_at = 20): (name, manifest column, Django field source)
COLUMNS = [
    *[
        (
            f"name{i}",
            {"type": "string", "size": 100, "index": i < 2},
            f"models.CharField(max_length=100, null=True, db_index={i < 2})",
        )
        for i in range(5)
    ],
    ("notes", {"type": "text"}, "models.TextField(null=True)"),
    ("body", {"type": "text"}, "models.TextField(null=True)"),
    ("qty", {"type": "int"}, "models.IntegerField(null=True)"),
    ("rank", {"type": "int", "index": True}, "models.IntegerField(null=True, db_index=True)"),
    ("big", {"type": "bigint"}, "models.BigIntegerField(null=True)"),
    (
        "amount",
        {"type": "decimal", "precision": 12, "scale": 2},
        "models.DecimalField(max_digits=12, decimal_places=2, null=True)",
    ),
    ("ratio", {"type": "float"}, "models.FloatField(null=True)"),
    ("active", {"type": "bool"}, "models.BooleanField(null=True)"),
    ("day", {"type": "date"}, "models.DateField(null=True)"),
    ("seen_at", {"type": "datetime"}, "models.DateTimeField(null=True)"),
    ("data", {"type": "json"}, "models.JSONField(null=True)"),
]
REFERENCE = "parent_id"  # uuid; references the previous table (a plain uuid in the first)


def manifest():
    models = []
    for t in range(TABLES):
        columns = [{"name": name, **spec} for name, spec, _ in COLUMNS]
        ref = {"name": REFERENCE, "type": "uuid"}
        if t:
            ref["references"] = {"table": f"t{t - 1}", "on_delete": "cascade"}
        models.append(
            {"table_name": f"t{t}", "model_key": f"t{t}", "label": f"T{t}", "columns": [*columns, ref]}
        )
    return {"key": KEY, "name": "Install bench", "version": "1.0.0", "model_definitions": models}


def migration_source():
    lines = [
        "import uuid",
        "from django.db import migrations, models",
        "import django.db.models.deletion",
        "",
        "class Migration(migrations.Migration):",
        "    initial = True",
        "    dependencies = []",
        "    operations = [",
    ]
    for t in range(TABLES):
        fields = [
            "('id', models.UUIDField(primary_key=True, default=uuid.uuid4, serialize=False))",
            "('created_at', models.DateTimeField())",
            "('updated_at', models.DateTimeField())",
        ]
        fields += [f"('{name}', {source})" for name, _, source in COLUMNS]
        if t:
            fields.append(
                f"('parent', models.ForeignKey(null=True, db_column='{REFERENCE}', related_name='+', "
                f"on_delete=django.db.models.deletion.CASCADE, to='{APP}.t{t - 1}'))"
            )
        else:
            fields.append(f"('{REFERENCE}', models.UUIDField(null=True))")
        lines.append(f"        migrations.CreateModel(name='t{t}', fields=[{', '.join(fields)}]),")
    lines.append("    ]")
    return "\n".join(lines) + "\n"


def write_project(directory: Path) -> Path:
    app = directory / APP
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "migrations" / "0001_initial.py").write_text(migration_source())
    (directory / "bench_install_settings.py").write_text(
        "from sandbox_project.settings import *  # noqa\n"
        f"INSTALLED_APPS = [*INSTALLED_APPS, {APP!r}]\n"
        f"METACORE = {{**METACORE, 'DATA_DIR': {str(directory / 'data')!r}}}\n"
    )
    bundle = directory / KEY
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps(manifest()))
    return bundle


def child(bundle: str):
    """In the child process: alternate timed installs and migrates; print JSON medians."""
    from bench._support import setup_django, vendor

    setup_django()
    from django.core.management import call_command

    from metacore.kernel import get_kernel

    installer = get_kernel().installer
    install_times, migrate_times = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        installer.install(bundle)
        install_times.append(time.perf_counter() - start)
        installer.uninstall(KEY, drop_data=True)

        start = time.perf_counter()
        call_command("migrate", APP, verbosity=0)
        migrate_times.append(time.perf_counter() - start)
        undo_migrate()
    print(json.dumps({"vendor": vendor(), "install": install_times, "migrate": migrate_times}))


def undo_migrate():
    """Drop the app's tables and forget its migration, content types and permissions (faster
    than `migrate benchapp zero`, which re-renders every model state)."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    with connection.cursor() as cursor:
        for t in reversed(range(TABLES)):
            cursor.execute(f"DROP TABLE {connection.ops.quote_name(f'{APP}_t{t}')}")
    MigrationRecorder(connection).migration_qs.filter(app=APP).delete()
    ContentType.objects.filter(app_label=APP).delete()  # so every round creates them again


def run_child(directory: Path, bundle: Path, database_url: str | None):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench_install_settings",
        "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable, "-m", "bench.install", "--child", str(bundle)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({database_url or 'sqlite'}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def postgres_url():
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        # Same server, own database: the bench runner's process already holds test_<NAME>.
        return url.rsplit("/", 1)[0] + "/metacore_bench_install"
    return os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/metacore_bench")


def main():
    print(
        f"install of {TABLES} tables x {len(COLUMNS) + 4} columns vs `migrate` of the same app; "
        f"median of {ROUNDS} alternated rounds"
    )
    with tempfile.TemporaryDirectory(prefix="metacore-bench-install-") as tmp:
        directory = Path(tmp)
        bundle = write_project(directory)
        for database_url in (None, postgres_url()):
            result = run_child(directory, bundle, database_url)
            install, migrate = statistics.median(result["install"]), statistics.median(result["migrate"])
            print(
                f"  {result['vendor']:<10} install {install * 1000:8.1f} ms   migrate {migrate * 1000:8.1f} ms   "
                f"install/migrate {install / migrate:.2f}  (goal <= 1.0)",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
