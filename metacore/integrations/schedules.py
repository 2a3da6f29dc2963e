"""ScheduleService (`get_kernel().schedules`): addon `schedules` on cron, run once per tick.

A manifest declares (v3 top level, or the flat manifest's `schedules`)::

    "schedules": [{"key": "nightly_sync", "cron": "0 3 * * *", "function": "SyncAll"}]

(`function` may also be spelled `export` or `handler: {type: wasm, function}`; `cron` may be
`schedule`; a sixth cron field is seconds, croniter's convention.) Every `metacore_worker`
tick (`--tick`, default 10 s) looks, for each enabled installation, at each schedule's latest
fire time not after now. The first worker to insert the `ScheduleRun` row for (addon,
schedule, fire time) owns that tick (a unique constraint, so two workers or two hosts never
both run it) and enqueues the export's run as a task.

Missed ticks: after downtime only the latest missed fire time runs (older ones are
coalesced into it, never replayed one by one); a fire time before the addon's installation
never runs. The export receives `{"schedule", "tick_at", "addon_key", "run_id"}`; each run is
recorded (`ScheduleRun`: status, duration, error) and audited (`schedule.run`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from croniter import croniter
from django.db import IntegrityError, transaction
from django.utils import timezone

from metacore.context import CallContext
from metacore.errors import MetacoreError
from metacore.integrations.models import ScheduleRun

if TYPE_CHECKING:
    from metacore.audit.pipe import AuditPipe
    from metacore.sandbox.service import SandboxService
    from metacore.schema.registry import ModelRegistry

log = logging.getLogger("metacore.schedules")


def declared_schedules(raw: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(key, cron, export) of the valid schedules in a manifest as received (`Manifest.raw`)."""
    found = []
    for entry in raw.get("schedules") or []:
        if not isinstance(entry, dict):
            continue
        handler: dict[str, Any] = entry["handler"] if isinstance(entry.get("handler"), dict) else {}
        export = entry.get("function") or entry.get("export") or handler.get("function")
        cron = entry.get("cron") or entry.get("schedule")
        key = entry.get("key") or entry.get("name") or export
        if (
            isinstance(cron, str)
            and isinstance(export, str)
            and isinstance(key, str)
            and croniter.is_valid(cron)
        ):
            found.append((key, cron, export))
        else:
            log.warning("addon schedule %r ignored: needs key, a valid cron and a function", entry)
    return found


class ScheduleService:
    def __init__(self, registry: ModelRegistry, sandbox: SandboxService, audit: AuditPipe) -> None:
        self.registry = registry
        self.sandbox = sandbox
        self.audit = audit
        self.worker = f"{socket.gethostname()}:{id(self):x}"

    def tick(self, now: datetime | None = None) -> list[ScheduleRun]:
        """Claim and enqueue every due tick no one has claimed yet; returns the claimed runs."""
        now = now or timezone.now()
        claimed = []
        for installed in self.registry.installed_addons():
            if not installed.enabled or installed.installed_at is None:
                continue
            addon = installed.key
            for key, cron, export in declared_schedules(installed.manifest.raw):
                fire_at = croniter(cron, now).get_prev(type(now))
                if fire_at < installed.installed_at:
                    continue
                try:
                    with transaction.atomic():
                        run = ScheduleRun.objects.create(
                            addon_key=addon,
                            schedule_key=key,
                            tick_at=fire_at,
                            export=export,
                            worker=self.worker,
                        )
                        transaction.on_commit(lambda run_id=run.id: self._enqueue(run_id))  # type: ignore[misc]  # the default binds this run's id
                except IntegrityError:
                    continue  # another worker owns this tick
                claimed.append(run)
        return claimed

    @staticmethod
    def _enqueue(run_id: int) -> None:
        from metacore.integrations.tasks import run_schedule

        run_schedule.enqueue(run_id)

    def run(self, run_id: int) -> str:
        """Run the export of a claimed tick and record how it went."""
        run = ScheduleRun.objects.filter(id=run_id, status=ScheduleRun.Status.RUNNING).first()
        if run is None:
            return "skipped"
        payload = {
            "schedule": run.schedule_key,
            "tick_at": run.tick_at.isoformat(),
            "addon_key": run.addon_key,
            "run_id": run.id,
        }
        started = time.monotonic()
        status, error = ScheduleRun.Status.OK, ""
        try:
            result = self.sandbox.call(
                run.addon_key,
                run.export,
                payload,
                CallContext.system(f"schedule:{run.schedule_key}", request_id=f"schedule-{run.id}"),
            )
            if isinstance(result, dict) and result.get("success") is False:
                status, error = (
                    ScheduleRun.Status.FAILED,
                    str(result.get("error") or "the export answered success: false"),
                )
        except MetacoreError as exc:
            status, error = ScheduleRun.Status.FAILED, exc.message
        duration = (time.monotonic() - started) * 1000
        ScheduleRun.objects.filter(id=run.id).update(
            status=status, error=error[:2000], duration_ms=duration, finished_at=timezone.now()
        )
        self.audit.record(
            "schedule.run",
            addon=run.addon_key,
            target=f"{run.schedule_key}:{run.export}",
            decision="allow",
            reason=error[:500],
            details={
                "run": run.id,
                "tick_at": run.tick_at.isoformat(),
                "status": status,
                "duration_ms": round(duration, 3),
                "worker": run.worker,
            },
        )
        return status
