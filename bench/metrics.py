"""/metrics latency with 1,000 deliveries and 10M ledger items in PostgreSQL.

Run:  .venv/bin/python bench/metrics.py [--quick] [--write]

Creates a scratch database (``bench_metrics``), fills it in SQL (INSERT ... SELECT over
generate_series): 1,000 deliveries over 20 clients (half real-time, half files), 10M ledger
items (``--quick``: 1M), of which ``--owed`` (1 %) are still owed, the rest delivered;
500,000 real-time attempts of which 3,000 (10 a second) fall in the 5-minute window; 20,000
batches; then VACUUM ANALYZE, as autovacuum would have. Times ``/metrics`` (bearer token)
through Django's full request stack in this process: p50 and p95 of 50 scrapes after 3
warm-ups. The baseline, in the same run, is ``/healthz`` (a database ``SELECT 1``, a broker
round trip and the heartbeat's age). Run it once: the machine's two cores are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fill, scratch_database, write_section

SCRATCH_DB = "bench_metrics"
DELIVERIES = 1000
CLIENTS = 20
REFERRALS = 20_000  # each item pairs a referral with a delivery: up to 20M distinct pairs
ATTEMPTS = 500_000
WINDOW_ATTEMPTS = 3000
BATCHES = 20_000
SCRAPES = 50
TOKEN = "bench-metrics-token-not-secret"  # noqa: S105 (a scratch database)

ITEMS_SQL = """
INSERT INTO deliveries_deliveryitem
    (delivery_id, referral_id, created_at, status, attempts, reason, delivered_at)
SELECT d.id, %(first_referral)s + g / %(deliveries)s,
       now() - (%(items)s - g) * interval '30 days' / %(items)s,
       CASE WHEN g < %(items)s * (1 - %(owed)s) THEN 'delivered'
            WHEN d.kind = 'api' THEN 'pending' ELSE 'file' END,
       1, '', now()
FROM generate_series(0, %(items)s - 1) AS g
JOIN (SELECT id, kind, row_number() OVER (ORDER BY id) - 1 AS n FROM deliveries_delivery) AS d
  ON d.n = g %% %(deliveries)s
"""
# Old attempts spread over 30 days, then WINDOW_ATTEMPTS over the last five minutes.
ATTEMPTS_SQL = """
INSERT INTO deliveries_attempt
    (delivery_id, number, test, started_at, method, url, request_headers, request_body,
     status_code, response_headers, response_body, latency_ms, error_class, outcome, reason)
SELECT d.id, 1, false,
       CASE WHEN g < %(attempts)s - %(recent)s
            THEN now() - interval '10 minutes' - g * interval '30 days' / %(attempts)s
            ELSE now() - (%(attempts)s - g) * interval '300 seconds' / %(recent)s END,
       'POST', 'https://crm.example.com/leads', '[]', '{"email": "x@example.com"}',
       200, '[]', 'ok', 20 + g %% 900, '',
       (ARRAY['delivered', 'delivered', 'delivered', 'failed', 'rejected'])[1 + g %% 5], ''
FROM generate_series(0, %(attempts)s - 1) AS g
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM deliveries_delivery
      WHERE kind = 'api') AS d ON d.n = g %% (%(deliveries)s / 2)
"""
BATCHES_SQL = """
INSERT INTO deliveries_batch
    (delivery_id, number, kind, status, run_at, rows, files, bytes, sha256, attempts,
     started_at, finished_at, error, created_at, requested_by)
SELECT d.id, 1 + g / (%(deliveries)s / 2), 'new', 'sent', f, 1000, '[]', 250000, '', 1,
       f - interval '20 seconds', f, '', f, ''
FROM generate_series(0, %(batches)s - 1) AS g
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM deliveries_delivery
      WHERE kind <> 'api') AS d ON d.n = g %% (%(deliveries)s / 2)
CROSS JOIN LATERAL (SELECT now() - (%(batches)s - g) * interval '30 days' / %(batches)s) AS t(f)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M ledger items, not 10M")
    parser.add_argument("--owed", type=float, default=0.01, help="share of items still owed")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()
    items = 1_000_000 if args.quick else 10_000_000

    os.environ["METRICS_TOKEN"] = TOKEN
    scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _fill(items, args.owed)
    fill_seconds = time.perf_counter() - started
    print(f"filled in {fill_seconds:.0f} s", flush=True)

    from django.test import Client

    client = Client()
    load = os.getloadavg()[0]
    metrics = _timings(client, "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    healthz = _timings(client, "/healthz")
    size = len(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    load = max(load, os.getloadavg()[0])
    report = _report(items, args.owed, fill_seconds, metrics, healthz, size, load)
    print(report)
    if args.write:
        write_section("bench/metrics.py", report)


def _fill(items: int, owed: float) -> None:
    from django.db import connection
    from django.utils import timezone

    from deliveries.models import Delivery
    from referrals.models import Client, Referral

    fill(REFERRALS, clients=2)
    clients = [Client.objects.get(slug="alpha"), Client.objects.get(slug="bravo")]
    clients += Client.objects.bulk_create(
        Client(name=f"Client {n}", slug=f"client-{n}", time_zone="UTC") for n in range(CLIENTS - 2)
    )
    Delivery.objects.bulk_create(
        Delivery(client=clients[n % CLIENTS], name=f"delivery {n}",
                 kind="api" if n % 2 else "sftp", url="https://crm.example.com/leads",
                 host="sftp.example.com", username="bench",
                 paused_at=None if n % 97 else timezone.now())
        for n in range(DELIVERIES)
    )  # fmt: skip
    first_referral = Referral.objects.order_by("pk").values_list("pk", flat=True).first()
    params = {"items": items, "owed": owed, "deliveries": DELIVERIES,
              "first_referral": first_referral, "attempts": ATTEMPTS,
              "recent": WINDOW_ATTEMPTS, "batches": BATCHES}  # fmt: skip
    with connection.cursor() as cursor:
        for sql in (ITEMS_SQL, ATTEMPTS_SQL, BATCHES_SQL):
            cursor.execute(sql, params)
    connection.ensure_connection()
    connection.connection.autocommit = True  # VACUUM runs outside a transaction
    with connection.cursor() as cursor:
        for table in ("deliveries_deliveryitem", "deliveries_attempt", "deliveries_batch"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _timings(client, url: str, **headers: str) -> list[float]:
    for _ in range(3):
        assert client.get(url, **headers).status_code == 200
    timings = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        response = client.get(url, **headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return timings


def _p(timings: list[float], share: float) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[round(share * 100) - 1]


def _report(
    items: int, owed: float, fill_seconds: float, metrics: list[float],
    healthz: list[float], size: int, load: float,
) -> str:  # fmt: skip
    rows = "\n".join(
        f"| `{url}` | {statistics.median(t):.1f} | {_p(t, 0.95):.1f} | {max(t):.1f} |"
        for url, t in (("/metrics", metrics), ("/healthz (baseline)", healthz))
    )
    return f"""## /metrics (`bench/metrics.py`)

{DELIVERIES:,} deliveries of {CLIENTS} clients (half real-time, half files, one in 97 paused),
{items:,} ledger items of which {owed:.0%} ({int(items * owed):,}) still owed,
{ATTEMPTS:,} attempts ({WINDOW_ATTEMPTS:,} in the 5-minute window), {BATCHES:,} batches; filled
in SQL in {fill_seconds:.0f} s, then VACUUM ANALYZE. {SCRAPES} requests each through Django's
full stack after 3 warm-ups; the answer is {size / 1024:.0f} KiB. The machine's load average
(other work on its 2 cores) was up to {load:.1f} while timing.

| request | p50 ms | p95 ms | max ms |
| --- | --- | --- | --- |
{rows}

The scrape reads the backlog once through `item_owed_age` (index-only: count and oldest
entry per delivery), the window's attempts through `attempt_started` and its batches
through `batch_finished`: its cost grows with the number of deliveries, the backlog and the
window's attempts, not with the ledger's size."""


if __name__ == "__main__":
    main()
