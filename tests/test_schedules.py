"""Addon schedules: a due tick is claimed once (unique run key), its export runs as a task,
recorded and audited; two worker processes ticking together still run each tick once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import livekit
import pytest
from django.core.management import call_command
from django.utils import timezone

from metacore.integrations.models import ScheduleRun
from metacore.kernel import get_kernel
from metacore.models import AuditRecord, Installation

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "helpdesk"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scheduled(tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["schedules"] = [
        {"key": "heartbeat", "cron": "* * * * * *", "function": "echo"},  # every second
        {"key": "broken", "cron": "not a cron", "function": "echo"},
    ]
    (target / "manifest.json").write_text(json.dumps(manifest))
    get_kernel().installer.install(target)
    yield Installation.objects.get(key="helpdesk")
    get_kernel().installer.uninstall("helpdesk", drop_data=True)


def run_tasks():
    call_command("db_worker", batch=True, startup_delay=False, interval=0, verbosity=0)


def test_a_tick_is_claimed_once_run_recorded_and_audited(scheduled):
    schedules = get_kernel().schedules
    now = timezone.now() + timedelta(seconds=2)
    [run] = schedules.tick(now)
    assert schedules.tick(now) == []  # the same tick again: already claimed
    assert (run.schedule_key, run.export, run.tick_at) == ("heartbeat", "echo", now.replace(microsecond=0))
    assert schedules.tick(scheduled.installed_at - timedelta(days=1)) == []  # before the install: never
    run_tasks()
    run.refresh_from_db()
    assert run.status == "ok" and run.duration_ms > 0 and run.finished_at
    audit = AuditRecord.objects.get(kind="schedule.run")
    assert audit.addon == "helpdesk" and audit.details["status"] == "ok" and audit.target == "heartbeat:echo"
    assert (
        AuditRecord.objects.filter(
            kind="sandbox.call", target="echo", request_id=f"schedule-{run.id}"
        ).count()
        == 1
    )


def worker(tmp_path, name):
    env = {
        **os.environ,
        "DATABASE_URL": livekit.test_database_url(),
        "DJANGO_SETTINGS_MODULE": "worker_settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / f"{name}.log", "w+")
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "metacore_worker",
            "--tick",
            "0.2",
            "--interval",
            "0.1",
            "--no-startup-delay",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    ), log


def test_two_workers_run_each_tick_once(scheduled, tmp_path):
    workers = [worker(tmp_path, "a"), worker(tmp_path, "b")]
    try:
        deadline = time.monotonic() + 120
        while ScheduleRun.objects.filter(status="ok").count() < 4:
            assert time.monotonic() < deadline, [(log.seek(0), log.read()) for _, log in workers]
            assert all(p.poll() is None for p, _ in workers), [
                (log.seek(0), log.read()) for _, log in workers
            ]
            time.sleep(0.2)
    finally:
        for process, _ in workers:
            process.send_signal(signal.SIGTERM)
        for process, _ in workers:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    runs = list(ScheduleRun.objects.filter(schedule_key="heartbeat"))
    ticks = [r.tick_at for r in runs]
    assert len(ticks) == len(set(ticks)) >= 4
    finished = [r for r in runs if r.status == "ok"]
    calls = AuditRecord.objects.filter(kind="sandbox.call", target="echo", request_id__startswith="schedule-")
    assert sorted(calls.values_list("request_id", flat=True)) == sorted(f"schedule-{r.id}" for r in finished)
    assert not ScheduleRun.objects.filter(schedule_key="broken").exists()
