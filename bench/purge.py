"""The retention purge of 1M expired ledger items and 1M attempts while referrals arrive.

Run:  .venv/bin/python bench/purge.py [--quick] [--write]

Creates a scratch database (``bench_purge``), fills it in SQL: 250,000 referrals of two
clients, four real-time deliveries, 1M ledger items delivered 60-90 days ago (each referral
once per delivery) and 1M attempts of those items, then VACUUM ANALYZE (``--quick``: a tenth).
Ingestion is ``referrals_ingest`` called in this process with ``--per-call`` (10) referrals
a call (one call alone is CPU-bound Python: at one a call, 200 a second took most of a core
here, and any other load made the baseline itself fall behind), paced at ``--rate`` (200)
referrals a second (open loop: each call's latency counts from when it was
due), for another client whose one real-time delivery owes each (its ledger item written
and queued to Redis, as in production), after 5 s of warm-up. Three
phases on the same data:

1. ingestion alone (baseline), ``--seconds`` long;
2. ingestion while ``retention_purge`` runs in another process (retention 30 days,
   ``PURGE_BATCH_SIZE`` 2,000), until the purge ends;
3. the same rows put back (same SQL), then ingestion while another process runs a plain
   ``DELETE`` of exactly them (one statement per table), until it ends.

Reports ingestion p50/p95/p99 per phase, and the purge's rows/s beside the plain DELETE's.
Run it once: the machine's two cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import ROOT, fill, scratch_database
from harness.docs import write_section

SCRATCH_DB = "bench_purge"
DELIVERIES = 4
ITEMS_SQL = """
INSERT INTO deliveries_deliveryitem
    (delivery_id, referral_id, created_at, status, attempts, reason, delivered_at)
SELECT d.id, r.id, now() - interval '90 days' + (r.id %% 1000) * interval '40 minutes',
       'delivered', 1, '', now() - interval '90 days' + (r.id %% 1000) * interval '40 minutes'
FROM (SELECT id FROM referrals_referral ORDER BY id LIMIT %(referrals)s) AS r
CROSS JOIN (SELECT id FROM deliveries_delivery WHERE name LIKE 'crm %%') AS d
"""
ATTEMPTS_SQL = """
INSERT INTO deliveries_attempt
    (delivery_id, item_id, referral_id, number, test, started_at, method, url,
     request_headers, request_body, status_code, response_headers, response_body, latency_ms,
     error_class, outcome, reason)
SELECT i.delivery_id, i.id, i.referral_id, 1, false, i.delivered_at, 'POST',
       'https://crm.example.com/leads', '[]', '{"email": "person@example.com"}', 200, '[]',
       '{"ok": true}', 42.0, '', 'delivered', ''
FROM deliveries_deliveryitem i WHERE i.status = 'delivered'
"""
# Exactly what the purge removes with a 30-day retention (everything the fill made).
PLAIN_DELETE = (
    "DELETE FROM deliveries_attempt WHERE started_at < now() - interval '30 days'",
    "DELETE FROM deliveries_deliveryitem"
    " WHERE status = 'delivered' AND delivered_at < now() - interval '30 days'",
)
PURGE_ENV = {
    "RETENTION_DELIVERED_ITEMS_DAYS": "30", "RETENTION_ATTEMPTS_DAYS": "30",
    "RETENTION_BATCH_ENTRIES_DAYS": "30", "PURGE_BATCH_SIZE": "2000",
}  # fmt: skip
PURGE_CODE = """
import json, time, django
django.setup()
from privacy.runs import retention_purge
started = time.perf_counter()
run = retention_purge()
print(json.dumps({"seconds": time.perf_counter() - started, "removed": run.removed}))
"""
DELETE_CODE = """
import json, os, sys, time, psycopg
started, removed = time.perf_counter(), 0
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    for statement in json.loads(sys.argv[1]):
        removed += conn.execute(statement).rowcount
print(json.dumps({"seconds": time.perf_counter() - started, "removed": {"all": removed}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k items and attempts, not 1M")
    parser.add_argument("--rate", type=int, default=200, help="referrals stored a second")
    parser.add_argument("--per-call", type=int, default=10, help="referrals per ingestion call")
    parser.add_argument("--seconds", type=float, default=30, help="the baseline's length")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()
    referrals = (100_000 if args.quick else 1_000_000) // DELIVERIES
    url = scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _fill(referrals)
    print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
    env = {**os.environ, **PURGE_ENV, "DATABASE_URL": url}
    _ingest(args.rate, 5, args.per_call)  # warm-up: imports, prepared statements, connections
    phases = [("ingestion alone (baseline)", _ingest(args.rate, args.seconds, args.per_call), None)]
    print(phases[-1][0], _summary(phases[-1][1]), flush=True)
    purge = _beside(env, [sys.executable, "-c", PURGE_CODE], args.rate, args.per_call)
    phases.append(("ingestion during the retention purge", *purge))
    print(phases[-1][0], _summary(purge[0]), purge[1], flush=True)
    _put_back(referrals)
    plain = [sys.executable, "-c", DELETE_CODE, json.dumps(PLAIN_DELETE)]
    delete = _beside(env, plain, args.rate, args.per_call)
    phases.append(("ingestion during a plain DELETE", *delete))
    print(phases[-1][0], _summary(delete[0]), delete[1], flush=True)
    report = _report(args, referrals * DELIVERIES, phases)
    print(report)
    if args.write:
        write_section("bench/purge.py", report)


def _fill(referrals: int) -> None:
    from deliveries.models import Delivery
    from referrals.models import Client

    fill(referrals, clients=2)
    alpha, bravo = Client.objects.get(slug="alpha"), Client.objects.get(slug="bravo")
    Delivery.objects.bulk_create(
        Delivery(client=alpha, name=f"crm {n}", kind="api", url="https://crm.example.com/leads")
        for n in range(DELIVERIES)
    )  # fmt: skip
    # What arrives during the bench: bravo's, owed to one real-time delivery of its own.
    Delivery.objects.create(client=bravo, name="live", kind="api", url="https://crm.example.com/")
    _put_back(referrals)


def _put_back(referrals: int) -> None:
    """The expired items and attempts (again, after a purge), then VACUUM ANALYZE."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(ITEMS_SQL, {"referrals": referrals})
        cursor.execute(ATTEMPTS_SQL)
    connection.connection.autocommit = True  # VACUUM runs outside a transaction
    with connection.cursor() as cursor:
        for table in ("deliveries_deliveryitem", "deliveries_attempt", "referrals_referral"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    connection.connection.autocommit = False
    connection.close()


def _ingest(rate: int, seconds: float, per_call: int, until=None) -> list[float]:
    """Latencies (ms) of ``referrals_ingest`` calls of ``per_call`` referrals, due every
    per_call/rate s, for ``seconds`` or until ``until()`` is true."""
    from referrals.services import referrals_ingest

    latencies: list[float] = []
    start = time.perf_counter()
    n = 0
    while True:
        due = start + n * per_call / rate
        now = time.perf_counter()
        if (until is None and now - start >= seconds) or (until is not None and until()):
            return latencies
        if due > now:
            time.sleep(due - now)
        referrals_ingest(records=[_record(n * per_call + k) for k in range(per_call)])
        latencies.append((time.perf_counter() - due) * 1000)
        n += 1


_RUN = datetime.now(UTC).strftime("%H%M%S")


def _record(n: int) -> dict:
    return {
        "client": "bravo", "campaign": "c1", "external_id": f"live-{_RUN}-{os.getpid()}-{n}",
        "email": f"live{n}@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "opted_in_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip


def _beside(env: dict, command: list[str], rate: int, per_call: int) -> tuple[list, dict]:
    """Ingest while ``command`` runs in another process; its JSON answer."""
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    latencies = _ingest(rate, 0, per_call, until=lambda: process.poll() is not None)
    output, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{command[:2]} failed ({process.returncode})")
    return latencies, json.loads(output.strip().splitlines()[-1])


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(latencies: list[float]) -> str:
    return f"n={len(latencies)} p50={_p(latencies, 0.5):.1f} p95={_p(latencies, 0.95):.1f}"


def _report(args, rows: int, phases: list) -> str:
    import platform

    base = _p(phases[0][1], 0.95)
    lines = [
        "## Retention purge (`bench/purge.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL on loopback: {rows:,} expired ledger items "
        f"and {rows:,} attempts (four real-time deliveries), ingestion of {args.per_call} "
        f"referrals a call at {args.rate} referrals/s (`referrals_ingest`, a ledger item each, "
        f"queued to Redis). Load average at the end: {os.getloadavg()[0]:.1f} (the machine "
        "is shared).",
        "",
        "| phase | calls | p50 ms | p95 ms | p99 ms | p95 vs alone | removed | seconds | rows/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rates = []
    for name, latencies, work in phases:
        removed = sum(work["removed"].values()) if work else 0
        rate = removed / work["seconds"] if work else 0
        rates.append(rate)
        lines.append(
            f"| {name} | {len(latencies):,} | {_p(latencies, 0.5):.1f} | "
            f"{_p(latencies, 0.95):.1f} | {_p(latencies, 0.99):.1f} | "
            f"{_p(latencies, 0.95) / base:.2f}x | "
            + (f"{removed:,} | {work['seconds']:.0f} | {rate:,.0f} |" if work else "| | |")
        )
    purge_p95 = _p(phases[1][1], 0.95) / base
    lines += [
        "",
        f"The purge removes {rates[1]:,.0f} rows/s, {rates[1] / rates[2]:.2f}x a plain "
        f"`DELETE` of the same rows ({rates[2]:,.0f} rows/s). Aim: ingestion p95 at most 2x "
        f"alone during a purge: **{'met' if purge_p95 <= 2 else 'not met'}** "
        f"({purge_p95:.2f}x). Mean latency alone "
        f"{statistics.fmean(phases[0][1]):.1f} ms.",
        "",
        "Reproduce: start PostgreSQL and Redis, then `.venv/bin/python bench/purge.py --write`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
