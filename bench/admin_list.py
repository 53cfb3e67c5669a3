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
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH_DB = "bench_admin"

FILL_SQL = """
INSERT INTO referrals_referral (
    external_id, client_id, campaign_id, email, title, first_name, last_name, gender, mobile,
    address1, address2, city, state, zip_code, country, language, user_agent, browser,
    browser_version, os, device, ad_text, ad_response, audience_id, audience_name, currency,
    confirmation_ref, opted_in_at, created_at, extra)
SELECT 'ext-' || g, c.client_id, c.id, 'person' || g || '@example.com', 'Ms',
       'First' || (g %% 5000), 'Last' || (g %% 20000), CASE WHEN g %% 2 = 0 THEN 'F' ELSE 'M' END,
       '07700900' || (g %% 1000), g || ' High Street', '', 'London', 'Greater London', 'SW1A 1AA',
       'GB', 'en-GB', 'Mozilla/5.0', 'Chrome', '131.0', 'Android', 'mobile', 'Offer', 'Yes',
       'aud-1', 'Shoppers', 'GBP', 'CONF-' || g,
       now() - (g * interval '30 days' / %(rows)s), now() - (g * interval '30 days' / %(rows)s),
       '{}'::jsonb
FROM generate_series(1, %(rows)s) AS g
JOIN (SELECT id, client_id, row_number() OVER (ORDER BY id) - 1 AS n
      FROM referrals_campaign) AS c ON c.n = g %% 4
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args()

    import psycopg

    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    os.environ["DATABASE_URL"] = f"{args.server}/{SCRATCH_DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rokt_platform.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    manager, client_user, alpha = _setup()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, {"rows": args.rows})
        cursor.execute("ANALYZE referrals_referral")
    fill_seconds = time.perf_counter() - started

    pages = _pages(alpha)
    timings = [(label, user, url, _median_ms(user, url)) for label, user, url in [
        (label, manager if who == "staff" else client_user, url) for label, who, url in pages
    ]]  # fmt: skip
    baseline_ms = _baseline_ms(manager)
    report = _report(args.rows, fill_seconds, timings, baseline_ms)
    print(report)
    if args.write:
        _write(report)


def _setup():
    from referrals.models import Campaign, Client
    from referrals.roles import account_manager_create, client_user_create

    alpha = Client.objects.create(name="Alpha", slug="alpha", time_zone="Europe/London")
    bravo = Client.objects.create(name="Bravo", slug="bravo", time_zone="America/New_York")
    for client in (alpha, bravo):
        for number in (1, 2):
            Campaign.objects.create(client=client, external_id=f"c{number}", name=f"C{number}")
    manager = account_manager_create(username="manager", password="bench-not-secret-1")
    client_user = client_user_create(client=alpha, username="alice", password="bench-not-sec-2")
    return manager, client_user, alpha


def _pages(alpha) -> list[tuple[str, str, str]]:
    campaign = alpha.campaigns.first()
    base = "/admin/referrals/referral/"
    return [
        ("staff, all referrals", "staff", base),
        ("staff, one client", "staff", f"{base}?client={alpha.pk}"),
        ("staff, one campaign", "staff", f"{base}?client={alpha.pk}&campaign={campaign.pk}"),
        ("staff, search by email", "staff", f"{base}?q=person123456@example.com"),
        ("staff, search by last name", "staff", f"{base}?q=last1234"),
        ("staff, stored in a 2-day range", "staff",
         f"{base}?created_at__range__gte=2026-11-01&created_at__range__lte=2026-11-02"),
        ("staff, page 50", "staff", f"{base}?p=50"),
        ("client user, own referrals", "client", base),
        ("client user, search by email", "client", f"{base}?q=person123456@example.com"),
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
        "<!-- bench/admin_list.py: begin -->",
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
        "<!-- bench/admin_list.py: end -->",
    ]
    return "\n".join(lines)


def _write(report: str) -> None:
    path = ROOT / "docs" / "PERFORMANCE.md"
    text = path.read_text() if path.exists() else "# Performance\n\nFigures from `bench/`.\n"
    marker = re.compile(r"<!-- bench/admin_list.py: begin -->.*?<!-- bench/admin_list.py: end -->",
                        re.S)  # fmt: skip
    text = marker.sub(report, text) if marker.search(text) else f"{text.rstrip()}\n\n{report}\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
