"""The ledger: what each delivery owes, written in the transaction that stores the referral.

``ledger_record`` runs inside that transaction (``referrals.services.referrals_insert``,
``Referral.save`` and ``Referral.objects.bulk_create`` all call it), so a referral and the
items that promise its delivery commit together or not at all. A delivery never has to guess
what is new from timestamps or ids, which would skip rows whose transaction commits late.

One INSERT ... SELECT per call: the database matches referrals to deliveries by client,
campaign scope and start time, whatever the number of referrals or deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.utils import timezone

from rokt_platform.prepared import execute_for_ids

# What each delivery owes the referrals of a CTE ``r`` (id, client_id, campaign_id,
# created_at) made by the statement it ends: the stored referrals' ids here; the row just
# inserted by ``referrals.ingest_few``, which stores a few referrals and their items in one
# statement.
LEDGER_INSERT = """
INSERT INTO deliveries_deliveryitem
    (delivery_id, referral_id, created_at, status, attempts, reason)
SELECT d.id, r.id, %s, CASE WHEN d.kind = 'api' THEN 'pending' ELSE 'file' END, 0, ''
FROM r
JOIN deliveries_delivery d ON d.client_id = r.client_id
WHERE d.active
  AND r.created_at >= d.starts_at
  AND (d.all_campaigns OR EXISTS (
        SELECT 1 FROM deliveries_delivery_campaigns dc
        WHERE dc.delivery_id = d.id AND dc.campaign_id = r.campaign_id))
RETURNING id, delivery_id, status
"""

# The referrals are found by key first: PostgreSQL plans this statement once for any ids
# (prepared), and joined to the deliveries it read every referral of their clients (found
# through the delivery's client) to keep the asked ones. MATERIALIZED keeps it from merging
# the look-up into the join (SQLite has no need, and older ones no keyword).
_STORED = """
WITH r AS {materialized} (
    SELECT id, client_id, campaign_id, created_at FROM referrals_referral WHERE id {ids}
)
"""
_MATCH = _STORED + LEDGER_INSERT


def ledger_record(referral_ids: Sequence[int]) -> None:
    """Record one pending item per active delivery that each stored referral matches; items
    of real-time deliveries are queued for sending when the transaction commits."""
    if not referral_ids:
        return
    now = timezone.now()
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    match = _MATCH.replace("{materialized}", materialized)
    ledger_queue(execute_for_ids(match, referral_ids, after=[now]))


def ledger_queue(rows: Iterable[tuple[int, int, str]]) -> None:
    """Queue the real-time items among the ledger's new ``rows`` (id, delivery id, status)
    for sending once the transaction that wrote them commits (at once outside one)."""
    api_items: dict[int, list[int]] = {}
    for item_id, delivery_id, status in rows:
        if status == "pending":
            api_items.setdefault(delivery_id, []).append(item_id)
    if api_items:
        from deliveries.api_runs import api_items_enqueue

        # The outbox's fast path: queued once the referral is really stored. If the message is
        # lost (broker down, worker killed), the retry tick finds the item pending and sends it.
        # robust: a broker that is down must not turn a stored referral into an error for the
        # collector; the tick sends the items instead.
        transaction.on_commit(lambda: api_items_enqueue(api_items), robust=True)
