"""The database audit sink's write against the obvious one, interleaved in one run.

Baseline: one `AuditRecord.save()` per record, in a savepoint inside a transaction (how the
sink wrote before records were batched). Measured: what `DatabaseSink` does now, a compiled
INSERT per record outside a transaction and one INSERT per transaction inside
`atomic_with_audit`. Ratio = now / baseline (lower is better); the transaction's own
BEGIN/COMMIT is in both sides.
"""

import os

from bench._support import paired, setup_django, vendor

RECORDS_PER_TRANSACTION = 3


def main():
    setup_django()
    from django.db import DEFAULT_DB_ALIAS, transaction

    from metacore.audit.pipe import AuditPipe
    from metacore.audit.sinks import DatabaseSink, atomic_with_audit
    from metacore.models import AuditRecord

    pipe, sink = AuditPipe([DatabaseSink()]), AuditPipe([])

    def record():
        return pipe.record(
            "crud.create", addon="bench", target="bench.items:1", decision="allow", details={"n": 1}
        )

    def saved_record():
        data = sink.record(
            "crud.create", addon="bench", target="bench.items:1", decision="allow", details={"n": 1}
        )
        fields = data.as_dict()
        AuditRecord(event_id=fields.pop("id"), **fields).save(using=DEFAULT_DB_ALIAS, force_insert=True)

    def save_in_savepoints():
        with transaction.atomic():
            for _ in range(RECORDS_PER_TRANSACTION):
                with transaction.atomic():
                    saved_record()

    def batched():
        with atomic_with_audit():
            for _ in range(RECORDS_PER_TRANSACTION):
                record()

    cases = (
        ("autocommit, 1 record", record, saved_record),
        (f"transaction, {RECORDS_PER_TRANSACTION} records", batched, save_in_savepoints),
    )
    print(
        f"audit write on {vendor()} (load average {os.getloadavg()[0]:.1f}); ratio = now / save() per record"
    )
    print(f"{'case':26} {'now us':>8} {'save() us':>10} {'ratio':>6}")
    for name, now, baseline in cases:
        a, b = paired(now, baseline)
        print(f"{name:26} {a * 1e6:8.0f} {b * 1e6:10.0f} {a / b:6.2f}")
    AuditRecord.objects.filter(addon="bench").delete()
