"""`manage.py metacore_worker`: the background worker of the embedded setup.

Runs django-tasks' database worker (`db_worker`, same options) and, next to it, metacore's
tick every `--tick` seconds: requeue webhook deliveries whose worker died mid-attempt or
whose task was lost, and claim due addon schedule ticks (integrations/schedules.py). With another task backend (RQ), run that backend's workers and
`metacore_worker --tick-only` once per deployment.
"""

import logging
import threading
import time

from django.core.management import CommandError
from django.db import close_old_connections
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from metacore.kernel import get_kernel

log = logging.getLogger("metacore.worker")


def tick():
    """One round of metacore's periodic work."""
    kernel = get_kernel()
    return {"recovered": kernel.deliveries.recover(), "scheduled": len(kernel.schedules.tick())}


class Command(DbWorkerCommand):
    help = "Run background tasks (webhook deliveries) and metacore's periodic tick."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--tick", type=float, default=10.0, help="seconds between ticks (default 10)")
        parser.add_argument("--tick-only", action="store_true", help="only tick (tasks run elsewhere)")
        parser.set_defaults(reload=False)  # a reloader's child would outlive a killed parent

    def handle(self, *args, tick, tick_only, **options):
        if options.get("reload"):
            raise CommandError("metacore_worker does not reload; restart it after code changes")
        if tick_only:
            return self._ticks(tick)
        threading.Thread(target=self._ticks, args=(tick,), daemon=True, name="metacore-tick").start()
        return super().handle(*args, **options)

    @staticmethod
    def _ticks(interval):
        while True:
            try:
                close_old_connections()
                tick()
            except Exception:  # the tick must outlive a database hiccup
                log.exception("metacore tick failed")
            time.sleep(interval)
