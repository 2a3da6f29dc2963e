from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from metacore.management.base import MetacoreCommand
from metacore.models import AuditRecord
from metacore.retention import delete_in_batches


class Command(MetacoreCommand):
    help = "Delete AuditRecord rows older than --older-than DAYS (retention for the database audit sink)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--kind", action="append", default=[], help="only these event kinds (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--batch-size", type=int, default=5000)
        self.add_format_argument(parser)

    def handle(self, *args, older_than, kind, dry_run, batch_size, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive")
        cutoff = timezone.now() - timedelta(days=older_than)
        old = AuditRecord.objects.filter(timestamp__lt=cutoff)
        if kind:
            old = old.filter(kind__in=kind)
        if dry_run:
            count = old.count()
            self.report(
                options,
                f"{count} audit records older than {cutoff:%Y-%m-%d %H:%M} would be deleted",
                {"would_delete": count, "cutoff": cutoff.isoformat()},
            )
            return
        deleted = delete_in_batches(old, batch_size)
        self.report(
            options,
            f"deleted {deleted} audit records older than {cutoff:%Y-%m-%d %H:%M}",
            {"deleted": deleted, "cutoff": cutoff.isoformat()},
        )
