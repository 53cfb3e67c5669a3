"""The ledger: what each delivery owes, written in the transaction that stores the referral.

``LEDGER_HOOK``, registered with referrals' stored hooks (``referrals.hooks``) by this app's
``AppConfig.ready()``, runs inside that transaction whatever stores the referral
(``referrals.services.referrals_insert``, ``Referral.save``, ``Referral.objects.bulk_create``
call ``ledger_record``; ``referrals.ingest_few`` puts ``LEDGER_INSERT`` in its one statement),
so a referral and the items that promise its delivery commit together or not at all. A
delivery never has to guess what is new from timestamps or ids, which would skip rows whose
transaction commits late.

One INSERT ... SELECT per call: the database matches referrals to deliveries by client,
campaign scope and start time, whatever the number of referrals or deliveries.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.channels import REALTIME_KINDS
from referrals.hooks import StoredHook
from rokt_platform.prepared import execute_for_ids

logger = logging.getLogger(__name__)

# A real-time delivery's item is due at once ("pending"); a file one's waits for a batch.
_REALTIME = "d.kind IN ({})".format(", ".join(f"'{kind}'" for kind in REALTIME_KINDS))
# What each delivery owes the referrals of a CTE ``r`` (id, client_id, campaign_id,
# created_at) made by the statement it ends: the stored referrals' ids here; the rows just
# inserted by ``referrals.ingest_few``, which stores a few referrals and runs this as their
# stored hook's CTE in one statement.
# Which active delivery ``d`` owes which referral of ``r``: its client's, stored from the
# delivery's start on, in its scope. The one rule, for new referrals and for backfills.
_OWED = """
FROM r
JOIN deliveries_delivery d ON d.client_id = r.client_id
WHERE d.active
  AND r.created_at >= d.starts_at
  AND (d.all_campaigns OR EXISTS (
        SELECT 1 FROM deliveries_delivery_campaigns dc
        WHERE dc.delivery_id = d.id AND dc.campaign_id = r.campaign_id))
"""
LEDGER_INSERT = (
    f"""
INSERT INTO deliveries_deliveryitem
    (delivery_id, referral_id, created_at, status, attempts, reason)
SELECT d.id, r.id, %s, CASE WHEN {_REALTIME} THEN 'pending' ELSE 'file' END, 0, ''"""
    + _OWED
    + "RETURNING id, delivery_id, status\n"
)

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


# What one delivery owes of the referrals already stored: its client's from its start on
# (the index on client and created_at finds them), less those it already has an item for
# (ON CONFLICT: real-time items stay, delivered or not) or already put in a batch (file items
# move out of the ledger into batch entries when frozen). Real-time items are due at once and
# left to the tick, which queues an endpoint's backlog a chunk per free slot of its budget:
# a backfill of a million referrals neither floods the broker nor sits in this process.
_BACKFILL = f"""
WITH r AS (
    SELECT id, client_id, campaign_id, created_at FROM referrals_referral
    WHERE client_id = %(client)s AND created_at >= %(starts_at)s
)
INSERT INTO deliveries_deliveryitem
    (delivery_id, referral_id, created_at, status, next_attempt_at, attempts, reason)
SELECT d.id, r.id, %(now)s, CASE WHEN {_REALTIME} THEN 'pending' ELSE 'file' END,
       CASE WHEN {_REALTIME} THEN %(now)s END, 0, ''{_OWED}
  AND d.id = %(delivery)s
  AND (d.purged_through IS NULL OR r.created_at > d.purged_through)
  AND NOT EXISTS (
        SELECT 1 FROM deliveries_batchentry e
        WHERE e.referral_id = r.id AND e.batch_id IN (
            SELECT b.id FROM deliveries_batch b WHERE b.delivery_id = d.id))
ON CONFLICT (delivery_id, referral_id) DO NOTHING
"""  # noqa: S608 (constants only)


def ledger_backfill(delivery) -> int:
    """Record what ``delivery`` owes of the referrals already stored (a delivery created with
    an earlier start, a start moved earlier, a scope widened), each once, never one it has
    sent or holds already; how many it now owes besides. Never further back than what the
    retention purge forgot (``Delivery.purged_through``): those were delivered.

    Runs in the caller's transaction, which must hold the delivery's row ``FOR UPDATE``: a
    file run freezing a batch (its batch row's key lock on the delivery) then either finishes
    first, and this statement sees its batch entries, or starts after, and takes these items.
    """
    params = {"client": delivery.client_id, "starts_at": delivery.starts_at,
              "now": timezone.now(), "delivery": delivery.pk}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_BACKFILL, params)
        return cursor.rowcount


# A transaction older than the save, still open: it may store a referral the backfill could
# not see (not yet committed) through a statement that could not see the delivery (not yet
# committed either); the two would pass each other and the referral be owed by nobody.
_OLDER_TRANSACTIONS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start < %s
"""
# How long the settling pass waits for such transactions before it looks anyway: ingestion's
# last a few milliseconds; one open this long is something else (an export's snapshot).
SETTLE_WAIT_SECONDS = 600.0


def ledger_backfill_settle(delivery_id: int, *, saved_at: dt.datetime) -> int:
    """The backfill once more, after every transaction begun before the save (at
    ``saved_at``, committed) has ended: what they stored meanwhile is then seen, and owed
    once (ON CONFLICT). PostgreSQL only: SQLite takes one writer at a time."""
    deadline = time.monotonic() + SETTLE_WAIT_SECONDS
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_OLDER_TRANSACTIONS, [saved_at])
            (older,) = cursor.fetchone()
        if not older:
            break
        if time.monotonic() > deadline:
            logger.warning("delivery %s: backfill settled with %s older transactions still "
                           "open", delivery_id, older)  # fmt: skip
            break
        time.sleep(0.2)
    from deliveries.models import Delivery

    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id, active=True).first()
        return ledger_backfill(delivery) if delivery is not None else 0


def ledger_forgotten(marks: dict[int, dt.datetime]) -> None:
    """Record that the ledger's records of referrals stored up to ``marks[delivery id]`` may
    be gone (the retention purge), so no backfill owes them again. The caller holds the
    deliveries' rows (locked before the items, as a backfill locks them)."""
    from deliveries.models import Delivery

    for delivery_id, stored_at in sorted(marks.items()):
        Delivery.objects.filter(pk=delivery_id).filter(
            Q(purged_through__isnull=True) | Q(purged_through__lt=stored_at)
        ).update(purged_through=stored_at)


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


LEDGER_HOOK = StoredHook(
    name="deliveries.ledger",
    record=ledger_record,
    cte=LEDGER_INSERT,
    cte_params=lambda: [timezone.now()],
    cte_rows=ledger_queue,
)
