from metacore.integrations.models import EventLogEntry
from metacore.management.base import PruneCommand


class Command(PruneCommand):
    help = "Delete event log entries older than --older-than DAYS (retention, like metacore_audit_prune)."
    noun = "event log entries"

    def old_rows(self, cutoff, options):
        return EventLogEntry.objects.filter(at__lt=cutoff)
