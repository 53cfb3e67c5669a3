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

from rokt_platform.prepared import execute_for_ids, prepared_cursor

_CLIENTS = "SELECT slug, id FROM referrals_client WHERE slug {ids}"
_REFERRALS = (
    "SELECT 'referral', external_id, id FROM referrals_referral "
    "WHERE client_id = %s AND external_id {ids}"
)
_CAMPAIGNS = (
    "SELECT 'campaign', external_id, id FROM referrals_campaign "
    "WHERE client_id = %s AND external_id {ids}"
)
# PostgreSQL: each external id looked up in the client's unique index, one probe apiece
# (OFFSET 0 keeps the planner from merging the look-up into a join; a LIMIT would have it
# walk the client's referrals hoping to meet the id soon, and a new one is never met). As
# ``client_id = %s AND external_id = ANY(%s)`` or as a join, a plan made without statistics
# (or when the client held few referrals) read every referral of the client.
_KNOWN_REFERRALS_PG = """
SELECT 'referral', asked.external_id, r.id
FROM unnest(%s::text[]) AS asked (external_id)
CROSS JOIN LATERAL (
    SELECT id FROM referrals_referral
    WHERE client_id = %s AND external_id = asked.external_id OFFSET 0
) r
"""
_KNOWN_PG = f"{_KNOWN_REFERRALS_PG} UNION ALL {_CAMPAIGNS.format(ids='= ANY(%s)')}"


@dataclass
class Known:
    """Of one client: the ids of the referrals and of the campaigns, by external id."""

    referrals: dict[str, int]
    campaigns: dict[str, int]


def client_ids(slugs: Collection[str]) -> dict[str, int]:
    """The ids of the clients of ``slugs`` that exist, by slug."""
    return dict(execute_for_ids(_CLIENTS, list(slugs)))


def known_ids(
    client_id: int, referral_ids: Collection[str], campaign_ids: Collection[str]
) -> Known:
    """Which of ``referral_ids`` the client already holds, which of ``campaign_ids`` it has."""
    known = Known({}, {})
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            params = [list(referral_ids), client_id, client_id, list(campaign_ids)]
            cursor.execute(_KNOWN_PG, params)
            rows = cursor.fetchall()
    else:
        rows = execute_for_ids(_REFERRALS, list(referral_ids), before=[client_id])
        rows += execute_for_ids(_CAMPAIGNS, list(campaign_ids), before=[client_id])
    for kind, external_id, pk in rows:
        (known.referrals if kind == "referral" else known.campaigns)[external_id] = pk
    return known
