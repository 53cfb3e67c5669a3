"""Erasure on request with a large ledger and batch history in PostgreSQL.

Run:  .venv/bin/python bench/erasure.py [--rows 1000000] [--batches 1000] [--write]

Creates a scratch database (``bench_erasure``), fills it with ``--rows`` referrals in SQL (two
clients), gives client alpha a real-time delivery that has delivered every one of its
referrals (a ledger item each) and a file delivery with ``--batches`` sent batches holding
all of them (a batch entry each), then times ``erasure_run`` by email, one person at a time
(each erasure commits): the median of 9. The baseline, in the same run, is the one statement
the removal avoids: deleting a referral's batch entries by ``referral_id`` alone, which no
index serves (the entries' only index leads with the batch: a freeze writes a million at a
time), instead of through the client's batches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import fill, scratch_database
from harness.docs import write_section

SCRATCH_DB = "bench_erasure"
SAMPLES = 9
BULK = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()

    scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    fill(args.rows, clients=2)
    items, entries = _deliveries(args.batches)
    fill_seconds = time.perf_counter() - started

    erasure_ms, counts = _erasures()
    baseline_ms = _baseline_ms()
    bulk_ms, bulk_baseline_ms = _bulk_ms()
    report = _report(args.rows, items, entries, args.batches, fill_seconds, erasure_ms, counts,
                     baseline_ms, bulk_ms, bulk_baseline_ms)  # fmt: skip
    print(report)
    if args.write:
        write_section("bench/erasure.py", report)


def _deliveries(batches: int) -> tuple[int, int]:
    """Alpha's real-time delivery (an item per referral, delivered) and file delivery
    (``batches`` sent batches sharing its referrals): how many items and entries."""
    from django.db import connection
    from django.utils import timezone

    from deliveries.models import Batch, Delivery
    from referrals.models import Client

    alpha = Client.objects.get(slug="alpha")
    api = Delivery.objects.create(client=alpha, name="crm", kind="api", url="https://x.test/")
    files = Delivery.objects.create(client=alpha, name="drop", kind="sftp", host="x.test")
    now = timezone.now()
    Batch.objects.bulk_create(
        Batch(delivery=files, number=n, status="sent", run_at=now) for n in range(1, batches + 1)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO deliveries_deliveryitem (delivery_id, referral_id, created_at, status,"
            " attempts, reason, delivered_at)"
            " SELECT %s, id, created_at, 'delivered', 1, '', created_at"
            " FROM referrals_referral WHERE client_id = %s",
            [api.pk, alpha.pk],
        )
        items = cursor.rowcount
        cursor.execute("SELECT count(*) FROM referrals_referral WHERE client_id = %s", [alpha.pk])
        (alpha_rows,) = cursor.fetchone()
        per_batch = max(1, -(-alpha_rows // batches))
        cursor.execute(
            "INSERT INTO deliveries_batchentry (batch_id, referral_id)"
            " SELECT b.id, r.id FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n"
            "  FROM referrals_referral WHERE client_id = %s) r"
            " JOIN deliveries_batch b ON b.delivery_id = %s AND b.number = 1 + r.n / %s",
            [alpha.pk, files.pk, per_batch],
        )
        entries = cursor.rowcount
        for table in ("deliveries_deliveryitem", "deliveries_batchentry", "deliveries_batch"):
            cursor.execute(f"ANALYZE {table}")
    return items, entries


def _erasures() -> tuple[list[float], dict]:
    from django.contrib.auth import get_user_model

    from privacy.erasure import Person, erasure_run

    manager = get_user_model().objects.create(username="manager", is_staff=True)
    timings, receipt = [], None
    # Alpha holds the referrals whose g % 4 is 0 or 1 (FILL_SQL: campaign g % 4, two each).
    for number in range(101, 101 + 4 * (SAMPLES + 1), 4):
        started = time.perf_counter()
        receipt = erasure_run(Person.by_email(f"Person{number}@Example.com"), user=manager,
                              source="api")  # fmt: skip
        timings.append((time.perf_counter() - started) * 1000)
    counts = {
        "referrals": receipt.referrals, "ledger items": receipt.ledger_items,
        "batch entries": receipt.batch_entries, "sent batches": receipt.sent_batches,
    }  # fmt: skip
    return timings[1:], counts  # the first warms the caches


def _baseline_ms() -> float:
    from django.db import connection, transaction

    from referrals.models import Referral

    ids = list(Referral.objects.filter(client__slug="alpha").order_by("pk")
               .values_list("pk", flat=True)[1000 : 1000 + SAMPLES])  # fmt: skip
    timings = []
    for pk in ids:
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("DELETE FROM deliveries_batchentry WHERE referral_id = %s", [pk])
            timings.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    return statistics.median(timings)


def _bulk_ms() -> tuple[float, float]:
    """Retention's case: ``BULK`` referrals removed at once (one chunk of ``referrals_remove``,
    rolled back), beside their entries deleted by ``referral_id`` alone."""
    from django.db import connection, transaction

    from privacy.removal import referrals_remove
    from referrals.models import Referral

    ids = list(Referral.objects.filter(client__slug="alpha").order_by("pk")
               .values_list("pk", flat=True)[5000 : 5000 + BULK])  # fmt: skip
    with transaction.atomic():
        started = time.perf_counter()
        referrals_remove(ids)
        bulk_ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("DELETE FROM deliveries_batchentry WHERE referral_id = ANY(%s)", [ids])
        baseline_ms = (time.perf_counter() - started) * 1000
        transaction.set_rollback(True)
    return bulk_ms, baseline_ms


def _report(rows, items, entries, batches, fill_seconds, erasure_ms, counts, baseline_ms,
            bulk_ms, bulk_baseline_ms) -> str:  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    each = ", ".join(f"{n:,} {what}" for what, n in counts.items())
    return "\n".join([
        "## Erasure on request (`bench/erasure.py`)",
        "",
        f"Measured {when} on 2 cores with {rows:,} referrals in PostgreSQL, one client's "
        f"{items:,} delivered ledger items and {entries:,} batch entries in {batches:,} sent "
        f"batches (filled in {fill_seconds:.0f} s). Each erasure (by email, every client, "
        f"committed) found one person: {each}.",
        "",
        "| what (erasures: median of 8; bulk: one run) | ms |",
        "| --- | ---: |",
        f"| erasure by email: find, remove, export files, receipt, commit | "
        f"{statistics.median(erasure_ms):.1f} |",
        f"| baseline: one referral's batch entries deleted by `referral_id` alone (no index) | "
        f"{baseline_ms:.1f} |",
        f"| `referrals_remove` of {BULK} referrals at once (retention's case), everything | "
        f"{bulk_ms:.0f} |",
        f"| baseline: their batch entries deleted by `referral_id` alone | "
        f"{bulk_baseline_ms:.0f} |",
        "",
        "Reproduce: start PostgreSQL, then `.venv/bin/python bench/erasure.py --write`.",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
