"""Ingestion throughput: the real API stack (gunicorn, DRF, PostgreSQL), 1,000-record requests.

Run:  .venv/bin/python bench/ingest.py [--requests 60] [--concurrency 4] [--write]

It creates a scratch database (``bench_ingest``, dropped first), migrates it, then measures in
one run, on the same generated referrals:

- **api**: HTTP POSTs of 1,000 records to /api/v1/referrals/ served by gunicorn (2 sync
  workers, one per core) from ``--concurrency`` client threads: referrals stored per second,
  and request latency;
- **service**: ``referrals_ingest`` called in this process (no HTTP, one core);
- **baseline**: ``Referral.objects.bulk_create`` of ready-made rows (no validation), the
  ORM's insert ceiling on this machine.

``--write`` replaces the ingestion section of docs/PERFORMANCE.md with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import scratch_database  # noqa: E402
from harness.docs import write_section  # noqa: E402

SCRATCH_DB = "bench_ingest"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="1,000-record API requests")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()

    database_url = scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    token = _setup_clients()

    results = {
        "baseline": _bench_bulk_create(records=20_000),
        "service": _bench_service(records=20_000),
        "api": _bench_api(database_url, token, args.requests, args.concurrency),
    }
    report = _report(results, args)
    print(report)
    if args.write:
        write_section("bench/ingest.py", report)


def _setup_clients() -> str:
    from rest_framework.authtoken.models import Token

    from referrals.models import Client
    from referrals.roles import account_manager_create

    for slug in ("bench-api", "bench-service", "bench-baseline"):
        Client.objects.create(name=slug, slug=slug)
    user = account_manager_create(username="bench", password="bench-password-not-secret")
    return Token.objects.create(user=user).key


def _records(slug: str, count: int, seed: int) -> list[dict]:
    from referrals.demo import demo_records

    return list(demo_records(client_slug=slug, campaigns=["c1", "c2"], count=count, seed=seed))


def _bench_bulk_create(records: int) -> dict:
    from referrals.models import Campaign, Client, Referral

    client = Client.objects.get(slug="bench-baseline")
    campaign = Campaign.objects.create(client=client, external_id="c1", name="c1")
    rows = []
    for record in _records(client.slug, records, seed=1):
        fields = {k: v for k, v in record.items() if k not in {"client", "campaign"}}
        rows.append(Referral(client=client, campaign=campaign, **fields))
    started = time.perf_counter()
    for start in range(0, len(rows), 1000):
        Referral.objects.bulk_create(rows[start : start + 1000])
    elapsed = time.perf_counter() - started
    return {"rows": records, "seconds": elapsed, "rate": records / elapsed}


def _bench_service(records: int) -> dict:
    from referrals.services import referrals_ingest

    batch = _records("bench-service", records, seed=2)
    started = time.perf_counter()
    created = 0
    for start in range(0, len(batch), 1000):
        outcomes = referrals_ingest(records=batch[start : start + 1000])
        created += sum(outcome.status == "created" for outcome in outcomes)
    elapsed = time.perf_counter() - started
    assert created == records, f"service stored {created} of {records}"
    return {"rows": records, "seconds": elapsed, "rate": records / elapsed}


def _bench_api(database_url: str, token: str, requests: int, concurrency: int) -> dict:
    from referrals.models import Referral

    records = _records("bench-api", requests * 1000, seed=3)
    bodies = [json.dumps(records[i : i + 1000]).encode() for i in range(0, len(records), 1000)]
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "rokt_platform.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, start_new_session=True,
        env={**os.environ, "DATABASE_URL": database_url, "ALLOWED_HOSTS": "127.0.0.1"},
    )  # fmt: skip
    try:
        _wait_for_port(port)
        _post(port, token, bodies[0])  # warm both workers' imports and connections
        queue = list(bodies[1:])
        latencies: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                status = _post(port, token, body)
                took = time.perf_counter() - started
                assert status == 201, f"API answered {status}"
                with lock:
                    latencies.append(took)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    stored = Referral.objects.filter(client__slug="bench-api").count()
    assert stored == requests * 1000, f"API stored {stored} of {requests * 1000}"
    measured = (requests - 1) * 1000
    return {
        "rows": measured,
        "seconds": elapsed,
        "rate": measured / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] * 1000,
    }


def _post(port: int, token: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/api/v1/referrals/", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Token {token}",
        })  # fmt: skip
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _report(results: dict, args: argparse.Namespace) -> str:
    api, service, baseline = results["api"], results["service"], results["baseline"]
    aim = "met" if api["rate"] >= 5000 else "NOT met"
    return "\n".join([
        "## Ingestion (`bench/ingest.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PostgreSQL on loopback. "
        f"API: {args.requests} requests of 1,000 records, {args.concurrency} client threads, "
        "gunicorn with 2 sync workers.",
        "",
        "| path | referrals/s | vs baseline | notes |",
        "| --- | ---: | ---: | --- |",
        f"| api (HTTP + DRF + validation + insert) | {api['rate']:,.0f} | "
        f"{api['rate'] / baseline['rate']:.2f}x | request p50 {api['p50_ms']:.0f} ms, "
        f"p95 {api['p95_ms']:.0f} ms |",
        f"| service (`referrals_ingest`, one core) | {service['rate']:,.0f} | "
        f"{service['rate'] / baseline['rate']:.2f}x | validation + duplicate check + insert |",
        f"| baseline (`bulk_create`, one core) | {baseline['rate']:,.0f} | 1.00x | "
        "ORM insert only, no validation |",
        "",
        f"Aim: at least 5,000 referrals/s through the API: **{aim}**.",
        "",
        "Reproduce: start PostgreSQL, then `.venv/bin/python bench/ingest.py --write`.",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
