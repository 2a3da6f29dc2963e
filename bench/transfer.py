"""Export memory: how much the process' peak resident memory grows while it streams a CSV
export of 1,000,000 rows through the full Django stack, against the same export of 10,000
rows in the same run. Goal: ratio `growth(1M) / growth(10k)` <= 1.5, i.e. memory does not
grow with the number of rows (the rows are read with a database cursor in chunks and written
as they go). The peak is Linux's VmHWM, reset before each export (/proc/self/clear_refs);
tracemalloc would slow the export several times. BENCH_EXPORT_ROWS overrides the large size."""

import gc
import os
import sys
import time
import uuid
from decimal import Decimal

from bench._support import install_manifest, items_manifest, setup_django, vendor

SMALL, LARGE = 10_000, int(os.environ.get("BENCH_EXPORT_ROWS", 1_000_000))
ADDON = "benchexport"
MANIFEST = items_manifest(
    ADDON,
    "Bench export",
    [
        {"name": "priority", "type": "integer", "not_null": True, "default": 0},
        {"name": "amount", "type": "numeric"},
        {"name": "done", "type": "boolean", "not_null": True, "default": False},
        {"name": "due", "type": "date"},
        {"name": "created_at", "type": "timestamptz"},
    ],
)


def _seed(model, org, start, count):
    from django.db import transaction
    from django.utils import timezone

    now = timezone.now()
    with transaction.atomic():
        for first in range(start, start + count, 20_000):
            model.objects.bulk_create(
                [
                    model(
                        id=uuid.uuid4(),
                        organization_id=org,
                        title=f"item {i}",
                        priority=i % 5,
                        amount=Decimal(i) / 4,
                        done=i % 2 == 0,
                        created_at=now,
                    )
                    for i in range(first, min(first + 20_000, start + count))
                ]
            )


def _kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _export(client):
    """(rows, bytes, seconds, peak growth in bytes) of one streamed export, consumed as it comes."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    before = _kib("VmRSS")
    started = time.perf_counter()
    response = client.get(f"/api/dynamic/{ADDON}.items/export", {"format": "csv"})
    assert response.status_code == 200, response.status_code
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    response.close()
    elapsed = time.perf_counter() - started
    return lines - 1, size, elapsed, (_kib("VmHWM") - before) * 1024


def main():
    setup_django()
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    from metacore.kernel import get_kernel
    from metacore.models import TenantMembership

    install_manifest(MANIFEST)
    model = get_kernel().registry.resolve(f"{ADDON}.items").model_class
    user = User.objects.create_superuser("bench-export", "bench@example.com", None)
    try:
        org = TenantMembership.objects.create(user=user).organization_id
        client = APIClient()
        client.force_authenticate(user)
        _seed(model, org, 0, SMALL)
        small = _export(client)
        _seed(model, org, SMALL, LARGE - SMALL)
        large = _export(client)
    finally:
        get_kernel().installer.uninstall(ADDON, drop_data=True)
        user.delete()
    print(f"export bench on {vendor()}: CSV export streamed through Django, growth of the peak RSS (VmHWM)")
    print(f"{'rows':>9} {'MB out':>8} {'seconds':>8} {'rows/s':>8} {'peak +MB':>9}")
    for rows, size, seconds, growth in (small, large):
        print(f"{rows:9d} {size / 1e6:8.1f} {seconds:8.1f} {rows / seconds:8.0f} {growth / 1e6:9.2f}")
    # A growth below one page of allocator slack is noise: floor both at 1 MB.
    ratio = max(large[3], 1e6) / max(small[3], 1e6)
    print(f"ratio growth({LARGE})/growth({SMALL}) = {ratio:.2f}  goal <= 1.5")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
