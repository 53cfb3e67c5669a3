"""A scratch PostgreSQL database for a bench, filled with realistic referrals in SQL (fast: a
million rows in well under a minute)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FILL_SQL = """
INSERT INTO referrals_referral (
    external_id, client_id, campaign_id, email, title, first_name, last_name, gender, birth_date,
    age, mobile, address1, address2, city, state, zip_code, country, language, ip_address,
    user_agent, browser, browser_version, os, device, ad_text, ad_response, audience_id,
    audience_name, bid_price, currency, confirmation_ref, opted_in_at, created_at, extra)
SELECT 'ext-' || g, c.client_id, c.id, 'Person' || g || '@Example.com', 'Ms',
       'first' || (g %% 5000), 'LAST' || (g %% 20000),
       (ARRAY['M', 'F', 'x', ''])[1 + g %% 4], date '1950-01-01' + (g %% 20000), 18 + g %% 60,
       '07700900' || (g %% 1000), g || ' High Street', '', 'greater london', 'Greater London',
       'SW1A 1AA', 'GB', 'en-GB', ('10.0.0.0'::inet + (g %% 65536)),
       'Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36',
       'Chrome', '131.0', 'Android', 'mobile', 'Get 20%% off your first box', 'Yes please',
       'aud-' || (g %% 5), 'Shoppers', round((g %% 500) / 100.0, 2), 'GBP', 'CONF-' || g,
       now() - (g * interval '30 days' / %(rows)s), now() - (g * interval '30 days' / %(rows)s),
       jsonb_build_object('newsletter', g %% 2 = 0, 'source', 'bench')
FROM generate_series(1, %(rows)s) AS g
JOIN (SELECT id, client_id, row_number() OVER (ORDER BY id) - 1 AS n
      FROM referrals_campaign) AS c ON c.n = g %% %(campaigns)s
"""


def scratch_database(server: str, name: str) -> str:
    """Drop and create ``name`` on ``server``; point Django at it; return its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return use_database(f"{server}/{name}")


def use_database(url: str) -> str:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rokt_platform.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    return url


def fill(rows: int, *, clients: int = 2) -> None:
    """``clients`` clients (alpha, bravo) with two campaigns each, then ``rows`` referrals
    spread over the campaigns."""
    from django.db import connection

    from referrals.models import Campaign, Client

    zones = (("alpha", "Europe/London"), ("bravo", "America/New_York"))
    for slug, zone in zones[:clients]:
        client = Client.objects.create(name=slug.title(), slug=slug, time_zone=zone)
        for number in (1, 2):
            Campaign.objects.create(client=client, external_id=f"c{number}", name=f"C{number}")
    with connection.cursor() as cursor:
        cursor.execute(FILL_SQL, {"rows": rows, "campaigns": 2 * clients})
        cursor.execute("ANALYZE referrals_referral")


def drop_databases(server: str, names) -> None:
    """Drop the scratch databases ``names`` (connections to them closed first)."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
