"""/metrics latency with 1,000 deliveries and 10M ledger items in PostgreSQL.

Run:  .venv/bin/python bench/metrics.py [--quick] [--write]
      .venv/bin/python bench/metrics.py --reuse [--write]  # time again, without a new fill

Creates a scratch database (``bench_metrics``), fills it in SQL (INSERT ... SELECT over
generate_series): 1,000 deliveries over 20 clients (half real-time, half files), 10M ledger
items (``--quick``: 1M), of which ``--owed`` (1 %) are still owed, the rest delivered;
500,000 real-time attempts of which 3,000 (10 a second) fall in the 5-minute window; 20,000
batches; then VACUUM ANALYZE, as autovacuum would have. Times ``/metrics`` (bearer token)
through Django's full request stack in this process: p50 and p95 of 50 scrapes after 3
warm-ups; the same when each scrape counts the backlog itself (no worker did for a minute);
the worker's count of the backlog, and the same with nine owed items in ten delivered (same
ledger, a tenth of the backlog). The baseline, in the same run, is ``/healthz`` (a database
``SELECT 1``, a broker round trip and the heartbeat's age). Run it once: the machine's two
cores are shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import fill, scratch_database, use_database
from harness.docs import write_section

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
    parser.add_argument("--reuse", action="store_true", help="time the database a run filled")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()
    items = 1_000_000 if args.quick else 10_000_000

    os.environ["METRICS_TOKEN"] = TOKEN
    fill_seconds = None
    from django.core.management import call_command

    if args.reuse:
        use_database(f"{args.server}/{SCRATCH_DB}")
        call_command("migrate", verbosity=0)  # what was added since the fill
        _refresh_window()
    else:
        scratch_database(args.server, SCRATCH_DB)
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _fill(items, args.owed)
        fill_seconds = time.perf_counter() - started
        print(f"filled in {fill_seconds:.0f} s", flush=True)

    from django.test import Client

    from metrics.backlog import backlog_snapshot_take
    from metrics.models import BacklogSnapshot

    client = Client()
    load = os.getloadavg()[0]
    owed = _owed()
    rows = [
        ("/healthz (baseline)", *_timings(client, "/healthz")),
        # As in production: a worker counted the backlog moments ago.
        (f"/metrics, {owed:,} owed", *_timings(client, "/metrics", _AUTH)),
        # No worker for a minute: each scrape counts the backlog itself.
        (f"/metrics, {owed:,} owed, counting it itself",
         *_timings(client, "/metrics", _AUTH, before=BacklogSnapshot.objects.all().delete)),
        (f"the worker's count, {owed:,} owed", *_calls(backlog_snapshot_take)),
    ]  # fmt: skip
    # The same ledger with a tenth of that backlog: what grows with it.
    _deliver_most_of_the_backlog()
    rows.append((f"the worker's count, {_owed():,} owed", *_calls(backlog_snapshot_take)))
    size = len(client.get("/metrics", **_AUTH).content)
    load = max(load, os.getloadavg()[0])
    report = _report(items, owed, fill_seconds, rows, size, load)
    print(report)
    if args.write:
        write_section("bench/metrics.py", report)


_AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def _refresh_window() -> None:
    """The newest attempts back into the window, which has moved on since the fill."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE deliveries_attempt SET started_at = now() - (id %% 300) * interval '1 second' "
            "WHERE id IN (SELECT id FROM deliveries_attempt ORDER BY started_at DESC LIMIT %s)",
            [WINDOW_ATTEMPTS],
        )


def _owed() -> int:
    from deliveries.models import DeliveryItem

    return DeliveryItem.objects.filter(status__in=["file", "pending", "sending", "failed"]).count()


def _deliver_most_of_the_backlog() -> None:
    """Nine owed items in ten delivered, then VACUUM (as autovacuum would)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE deliveries_deliveryitem SET status = 'delivered' "
            "WHERE status IN ('file', 'pending', 'sending', 'failed') AND id % 10 <> 0"
        )
    _vacuum("deliveries_deliveryitem")


def _vacuum(*tables: str) -> None:
    from django.db import connection

    connection.ensure_connection()
    connection.connection.autocommit = True  # VACUUM runs outside a transaction
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


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
    _vacuum("deliveries_deliveryitem", "deliveries_attempt", "deliveries_batch")


def _timings(
    client, url: str, headers: dict | None = None, before=None
) -> tuple[list[float], list[float]]:
    """Each request's time, and the time its SQL took (as Django measured it), in ms;
    ``before`` runs ahead of each request, untimed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        assert client.get(url, **(headers or {})).status_code == 200
    timings, sql = [], []
    for _ in range(SCRAPES):
        if before is not None:
            before()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, **(headers or {}))
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        sql.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
    return timings, sql


def _calls(function) -> tuple[list[float], list[float]]:
    """``function()`` timed like a request (20 times after a warm-up)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    function()
    timings, sql = [], []
    for _ in range(20):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            function()
            timings.append((time.perf_counter() - started) * 1000)
        sql.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
    return timings, sql


def _p(timings: list[float], share: float) -> float:
    return statistics.quantiles(timings, n=100, method="inclusive")[round(share * 100) - 1]


def _report(
    items: int, owed: int, fill_seconds: float | None, rows: list, size: int, load: float
) -> str:
    table = "\n".join(
        f"| `{label}` | {statistics.median(t):.1f} | {_p(t, 0.95):.1f} | {max(t):.1f} | "
        f"{statistics.median(sql):.1f} |"
        for label, t, sql in rows
    )
    filled = (
        f"filled in SQL in {fill_seconds:.0f} s" if fill_seconds is not None
        else "filled by an earlier run of this script"
    )  # fmt: skip
    return f"""## /metrics (`bench/metrics.py`)

{DELIVERIES:,} deliveries of {CLIENTS} clients (half real-time, half files, one in 97 paused),
{items:,} ledger items of which {owed:,} still owed, {ATTEMPTS:,} attempts
({WINDOW_ATTEMPTS:,} in the 5-minute window), {BATCHES:,} batches;
{filled}, then VACUUM ANALYZE.
{SCRAPES} requests each through Django's full stack after 3 warm-ups; the answer is
{size / 1024:.0f} KiB. Then nine owed items in ten are marked delivered (VACUUM again) and
the worker's count timed again: same ledger, a tenth of the backlog. The machine's load
average (other work on its 2 cores) was up to {load:.1f} while timing: every figure here is
slower than on an idle machine.

| what | p50 ms | p95 ms | max ms | SQL p50 ms |
| --- | --- | --- | --- | --- |
{table}

A scrape reads the backlog a worker counts every 15 seconds (one pass through
`item_owed_age`, index-only: count and oldest entry per delivery), the window's attempts
through `attempt_started` and its batches through `batch_finished`: its cost grows with the
number of deliveries and the window's attempts, not with the backlog or the ledger's size
(the 10M delivered items are never read). The count grows with the backlog; a scrape makes
it only when no worker did for a minute."""


if __name__ == "__main__":
    main()
