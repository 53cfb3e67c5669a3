"""Export throughput: CSV of 1M referrals with custom fields through the web view, beside
PostgreSQL's COPY of the same columns (the ceiling) and django-import-export's default export.

Run:  .venv/bin/python bench/export.py [--rows 1000000] [--iex-rows 200000] [--write]

Each measurement runs in its own process (peak RSS is its own):

- web view, PostgreSQL: POST /admin/referrals/referral/export/ through Django's full stack,
  the streamed body read to the end (the engine's SQL back end under COPY);
- COPY: ``COPY (SELECT <the same standard columns>) TO STDOUT (FORMAT csv)``;
- django-import-export: a ``ModelResource`` of the same columns, ``export()`` then ``.csv``,
  on ``--iex-rows`` referrals (it holds everything in memory; its memory grows with size);
- web view, SQLite: the same export on a SQLite file of ``--sqlite-rows`` referrals (the
  Python back end).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.database import fill, scratch_database, use_database
from harness.docs import write_section

SCRATCH_DB = "bench_export"
CUSTOM = [
    {"name": "GenderLabel", "kind": "value_map", "source": "gender", "no_match": "passthrough",
     "rules": [{"match": "equals", "value": "M", "output": "Male"}]},
    {"name": "OptInDay", "kind": "datetime", "source": "opted_in_at", "date_pattern": "%d/%m/%Y"},
    {"name": "FullName", "kind": "template", "template": "{{{first_name}}} {{{last_name}}}"},
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--iex-rows", type=int, default=200_000)
    parser.add_argument("--sqlite-rows", type=int, default=200_000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        os.environ["EXPORT_SYNC_MAX_ROWS"] = str(10**9)  # stream, whatever the size
        use_database(args.database_url)
        print(json.dumps(_measure(args.scenario, args)))
        return

    results = {}
    postgres = _prepare(scratch_database(args.server, SCRATCH_DB), args.rows)
    for scenario in ("web", "copy", "iex"):
        results[scenario] = _run(scenario, postgres, args)
    sqlite_path = Path(tempfile.mkdtemp()) / f"{SCRATCH_DB}.sqlite3"
    subprocess.run([sys.executable, __file__, "--scenario", "prepare-sqlite",
                    "--database-url", f"sqlite:///{sqlite_path}",
                    "--sqlite-rows", str(args.sqlite_rows)], check=True)  # fmt: skip
    results["sqlite"] = _run("web", f"sqlite:///{sqlite_path}", args)
    report = _report(args, results)
    print(report)
    if args.write:
        write_section("bench/export.py", report)


def _prepare(url: str, rows: int) -> str:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill(rows, clients=1)
    _custom_fields_and_user()
    return url


def _custom_fields_and_user() -> None:
    from customfields.models import CustomField
    from customfields.services import custom_field_save
    from referrals.models import Client
    from referrals.roles import account_manager_create

    client = Client.objects.get(slug="alpha")
    for definition in CUSTOM:
        custom_field_save(CustomField(client=client, **definition))
    account_manager_create(username="bench", password="bench-password-1")


def _run(scenario: str, database_url: str, args) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--scenario", scenario, "--database-url", database_url,
         "--iex-rows", str(args.iex_rows)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(output.strip().splitlines()[-1])
    print(scenario, database_url.split(":")[0], result, flush=True)
    return result


def _measure(scenario: str, args) -> dict:
    if scenario == "prepare-sqlite":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        _fill_sqlite(args.sqlite_rows)
        _custom_fields_and_user()
        return {}
    started = time.perf_counter()
    rows = {"web": _web, "copy": _copy, "iex": _iex}[scenario](args)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_mb": peak}


def _web(args) -> int:
    from django.contrib.auth import get_user_model
    from django.test import Client as Browser

    from referrals.models import Client

    browser = Browser()
    browser.force_login(get_user_model().objects.get(username="bench"))
    response = browser.post("/admin/referrals/referral/export/", {
        "client": Client.objects.get(slug="alpha").pk, "time_field": "created_at",
        "column_set": "custom", "format": "csv",
    })  # fmt: skip
    assert response.status_code == 200 and response.streaming, response.status_code
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
    return lines - 1  # the header


def _copy(args) -> int:
    from django.db import connection

    from customfields.sources import STANDARD_FIELDS

    columns = ", ".join(f.column for f in STANDARD_FIELDS.values())
    query = (f"SELECT {columns} FROM referrals_referral r JOIN referrals_client c ON c.id = "
             "r.client_id JOIN referrals_campaign cp ON cp.id = r.campaign_id "
             "ORDER BY r.created_at, r.id")  # fmt: skip
    with connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY ({query}) TO STDOUT (FORMAT csv)"
    ) as copy:
        for _ in copy:
            pass
        return cursor.cursor.rowcount


def _iex(args) -> int:
    from import_export import resources

    from referrals.models import Referral

    class ReferralResource(resources.ModelResource):
        """The library's default: the model's own fields (foreign keys as ids)."""

        class Meta:
            model = Referral

    queryset = Referral.objects.order_by("created_at", "id")[: args.iex_rows]
    data = ReferralResource().export(queryset=queryset).csv
    return data.count("\n") - 1


def _fill_sqlite(rows: int) -> None:
    from django.db import connection

    from referrals.models import Campaign, Client

    client = Client.objects.create(name="Alpha", slug="alpha", time_zone="Europe/London")
    campaign = Campaign.objects.create(client=client, external_id="c1", name="C1")
    with connection.cursor() as cursor:
        cursor.execute(f"""
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows})
            INSERT INTO referrals_referral (external_id, client_id, campaign_id, email, title,
                first_name, last_name, gender, mobile, address1, address2, city, state,
                zip_code, country, language, user_agent, browser, browser_version, os, device,
                ad_text, ad_response, audience_id, audience_name, currency, confirmation_ref,
                opted_in_at, created_at, extra, age, bid_price)
            SELECT 'ext-' || n, {client.pk}, {campaign.pk}, 'person' || n || '@example.com',
                'Ms', 'first' || (n % 5000), 'last' || (n % 20000), 'F', '07700900',
                n || ' High Street', '', 'London', 'Greater London', 'SW1A 1AA', 'GB', 'en-GB',
                'Mozilla/5.0', 'Chrome', '131.0', 'Android', 'mobile', 'Offer', 'Yes', 'aud-1',
                'Shoppers', 'GBP', 'CONF-' || n, datetime('now', '-' || (n % 40000) || ' minutes'),
                datetime('now', '-' || (n % 40000) || ' minutes'), '{{}}', 30, 1.5
            FROM g""")  # fmt: skip


def _report(args, r: dict) -> str:
    web, copy, iex, sqlite = r["web"], r["copy"], r["iex"], r["sqlite"]
    line = "| {} | {:,} | {:,.0f} | {:.0f} | {} |"
    share = web["rows_per_s"] / copy["rows_per_s"]
    speedup = web["rows_per_s"] / iex["rows_per_s"]
    return "\n".join([
        "## Export (`bench/export.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; each run in "
        "its own process. Export: 35 standard columns + 3 custom fields, CSV, one client.",
        "",
        "| run | rows | rows/s | peak RSS MB | vs |",
        "| --- | ---: | ---: | ---: | --- |",
        line.format("web view, PostgreSQL (COPY through the engine)", web["rows"],
                    web["rows_per_s"], web["peak_mb"],
                    f"{share:.0%} of COPY (aim >= 35%); {speedup:.0f}x django-import-export "
                    "(aim >= 20x); RSS aim < 150 MB"),
        line.format("PostgreSQL COPY of the standard columns (ceiling)", copy["rows"],
                    copy["rows_per_s"], copy["peak_mb"], ""),
        line.format("django-import-export default export (in memory)", iex["rows"],
                    iex["rows_per_s"], iex["peak_mb"], "its memory grows with the rows"),
        line.format("web view, SQLite (Python back end)", sqlite["rows"],
                    sqlite["rows_per_s"], sqlite["peak_mb"], "aim >= 45,000 rows/s"),
        "",
        "Reproduce: start PostgreSQL, then `.venv/bin/python bench/export.py --write`.",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
