from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from metacore.integrations.models import EventLogEntry
from metacore.management.base import MetacoreCommand
from metacore.retention import delete_in_batches


class Command(MetacoreCommand):
    help = "Delete event log entries older than --older-than DAYS (retention, like metacore_audit_prune)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--batch-size", type=int, default=5000)
        self.add_format_argument(parser)

    def handle(self, *args, older_than, dry_run, batch_size, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive")
        cutoff = timezone.now() - timedelta(days=older_than)
        old = EventLogEntry.objects.filter(at__lt=cutoff)
        if dry_run:
            count = old.count()
            self.report(
                options,
                f"{count} event log entries older than {cutoff:%Y-%m-%d %H:%M} would be deleted",
                {"would_delete": count, "cutoff": cutoff.isoformat()},
            )
            return
        deleted = delete_in_batches(old, batch_size)
        self.report(
            options,
            f"deleted {deleted} event log entries older than {cutoff:%Y-%m-%d %H:%M}",
            {"deleted": deleted, "cutoff": cutoff.isoformat()},
        )
