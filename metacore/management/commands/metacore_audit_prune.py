from metacore.management.base import PruneCommand
from metacore.models import AuditRecord


class Command(PruneCommand):
    help = "Delete AuditRecord rows older than --older-than DAYS (retention for the database audit sink)."
    noun = "audit records"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--kind", action="append", default=[], help="only these event kinds (repeatable)")

    def old_rows(self, cutoff, options):
        old = AuditRecord.objects.filter(timestamp__lt=cutoff)
        return old.filter(kind__in=options["kind"]) if options["kind"] else old
