"""Admin referral list latency with 1M referrals in PostgreSQL.

Run:  .venv/bin/python bench/admin_list.py [--rows 1000000] [--write]

Creates a scratch database (``bench_admin``), fills it with ``--rows`` referrals in SQL (two
clients, four campaigns, 30 days), then times admin pages through Django's full request stack
(middleware, admin, templates) in this process: the median of 5 requests after one warm-up.
The baseline, in the same run, is the same unfiltered list with Django's default paginator,
which counts every row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import fill, scratch_database
from harness.docs import write_section

SCRATCH_DB = "bench_admin"

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()

    scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    fill(args.rows, clients=2)
    fill_seconds = time.perf_counter() - started
    manager, client_user, alpha = _setup()

    pages = _pages(alpha)
    timings = [(label, user, url, _median_ms(user, url)) for label, user, url in [
        (label, manager if who == "staff" else client_user, url) for label, who, url in pages
    ]]  # fmt: skip
    baseline_ms = _baseline_ms(manager)
    report = _report(args.rows, fill_seconds, timings, baseline_ms)
    print(report)
    if args.write:
        write_section("bench/admin_list.py", report)


def _setup():
    from referrals.models import Client
    from referrals.roles import account_manager_create, client_user_create

    alpha = Client.objects.get(slug="alpha")
    manager = account_manager_create(username="manager", password="bench-not-secret-1")
    client_user = client_user_create(client=alpha, username="alice", password="bench-not-sec-2")
    return manager, client_user, alpha


def _pages(alpha) -> list[tuple[str, str, str]]:
    campaign = alpha.campaigns.first()
    base = "/admin/referrals/referral/"
    today = datetime.now(UTC).date()
    ten_days_ago, nine_days_ago = today - timedelta(days=10), today - timedelta(days=9)
    return [
        ("staff, all referrals", "staff", base),
        ("staff, one client", "staff", f"{base}?client={alpha.pk}"),
        ("staff, one campaign", "staff", f"{base}?client={alpha.pk}&campaign={campaign.pk}"),
        ("staff, search by email", "staff", f"{base}?q=Person123456@Example.com"),
        ("staff, search by last name", "staff", f"{base}?q=last1234"),
        ("staff, stored in a 2-day range", "staff",
         f"{base}?created_at__range__gte={ten_days_ago}&created_at__range__lte={nine_days_ago}"),
        ("staff, page 50", "staff", f"{base}?p=50"),
        ("client user, own referrals", "client", base),
        ("client user, search by email", "client", f"{base}?q=Person123456@Example.com"),
    ]  # fmt: skip


def _median_ms(user, url: str) -> float:
    from django.test import Client as TestClient

    browser = TestClient()
    browser.force_login(user)
    assert browser.get(url).status_code == 200, url
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        response = browser.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return statistics.median(samples)


def _baseline_ms(user) -> float:
    from django.core.paginator import Paginator

    from referrals.admin import ReferralAdmin

    capped = ReferralAdmin.paginator
    ReferralAdmin.paginator = Paginator  # Django's default: counts every row
    try:
        return _median_ms(user, "/admin/referrals/referral/")
    finally:
        ReferralAdmin.paginator = capped


def _report(rows: int, fill_seconds: float, timings, baseline_ms: float) -> str:
    lines = [
        "## Admin referral list (`bench/admin_list.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores with "
        f"{rows:,} referrals in PostgreSQL (filled in {fill_seconds:.0f} s); median of 5 "
        "requests through the full Django stack, 100 rows a page.",
        "",
        "| page | median ms |",
        "| --- | ---: |",
        *[f"| {label} | {ms:,.0f} |" for label, _, _, ms in timings],
        f"| baseline: staff, all referrals, Django's default paginator (full count) | "
        f"{baseline_ms:,.0f} |",
        "",
        "Reproduce: start PostgreSQL, then `.venv/bin/python bench/admin_list.py --write`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
