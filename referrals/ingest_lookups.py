"""What one ingestion call looks up before it stores: its clients, then per client the
referrals it already holds and the campaigns it names, in one statement on PostgreSQL.

A collector posting one referral a request pays these look-ups once per referral: built as
ORM querysets they cost more CPU than the insert (compiling three querysets, the models'
default orderings included), so they are written once, in SQL both databases run (ids and
external ids as one array on PostgreSQL, a list of parameters on SQLite), prepared on
PostgreSQL (``rokt_platform.prepared``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection

from rokt_platform.prepared import prepared_cursor

# Older SQLite builds allow 999 parameters in one statement.
_SQLITE_CHUNK = 900
_CLIENTS = "SELECT slug, id FROM referrals_client WHERE slug {values}"
_REFERRALS = (
    "SELECT 'referral', external_id, id FROM referrals_referral "
    "WHERE client_id = %s AND external_id {values}"
)
_CAMPAIGNS = (
    "SELECT 'campaign', external_id, id FROM referrals_campaign "
    "WHERE client_id = %s AND external_id {values}"
)
_KNOWN_PG = (
    f"{_REFERRALS.format(values='= ANY(%s)')} UNION ALL {_CAMPAIGNS.format(values='= ANY(%s)')}"
)


@dataclass
class Known:
    """Of one client: the ids of the referrals and of the campaigns, by external id."""

    referrals: dict[str, int]
    campaigns: dict[str, int]


def client_ids(slugs: Collection[str]) -> dict[str, int]:
    """The ids of the clients of ``slugs`` that exist, by slug."""
    return dict(_rows(_CLIENTS, [], list(slugs)))


def known_ids(
    client_id: int, referral_ids: Collection[str], campaign_ids: Collection[str]
) -> Known:
    """Which of ``referral_ids`` the client already holds, which of ``campaign_ids`` it has."""
    known = Known({}, {})
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            params = [client_id, list(referral_ids), client_id, list(campaign_ids)]
            cursor.execute(_KNOWN_PG, params)
            rows = cursor.fetchall()
    else:
        rows = _rows(_REFERRALS, [client_id], list(referral_ids))
        rows += _rows(_CAMPAIGNS, [client_id], list(campaign_ids))
    for kind, external_id, pk in rows:
        (known.referrals if kind == "referral" else known.campaigns)[external_id] = pk
    return known


def _rows(sql: str, before: list, values: list) -> list[tuple]:
    if not values:
        return []
    with prepared_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.format(values="= ANY(%s)"), [*before, values])
            return cursor.fetchall()
        rows: list[tuple] = []
        for start in range(0, len(values), _SQLITE_CHUNK):
            chunk = values[start : start + _SQLITE_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql.format(values=f"IN ({placeholders})"), [*before, *chunk])
            rows += cursor.fetchall()
    return rows
