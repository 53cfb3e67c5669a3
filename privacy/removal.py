"""Delete referrals and every copy of their data the platform keeps: their ledger items (queued
and in-flight sends included), their batch entries, their delivery attempts (what was sent and
what came back), then the referrals themselves. Erasure on request and retention both call
``referrals_remove``.

Inside the caller's transaction, so an erasure and its receipt commit together; once it has
committed nothing about these referrals is sent again:

- a real-time item is deleted under its row lock, taken in id order as every item statement of
  ``deliveries.api_items`` takes them (no deadlock with a claim, a tick or a resume). A send
  whose request is in flight records its outcome by updating the item first: after the commit
  it finds no item and writes no attempt (``deliveries.api_items.items_record``); a queued
  message finds nothing to claim;
- a file delivery that owes one of them, or holds one in a batch not yet sent, has its claim
  held to the commit (``delivery_claims_await``): a run writing or uploading that batch is
  waited for (it sends as it was; it had the referral before the erasure began), a later run
  writes the batch without it. An unsent batch's row count goes down with it, so the file's
  check (rows written = rows frozen) holds.

Attempts are deleted, not blanked: their URL (a query-string body), headers and both bodies
may each hold the person's data, and nothing reads old attempts for more than a log (health is
on the delivery's own columns).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields

from django.db import connection, transaction

from deliveries.claims import delivery_claims_await
from deliveries.models import Batch
from rokt_platform.prepared import execute_for_ids

# Referrals per round of statements: each statement's id list stays a bounded size.
_CHUNK = 500


@dataclass(frozen=True)
class RemovalCounts:
    """What ``referrals_remove`` deleted; and what had already left the platform
    (``delivered_items``: real-time sends the client got, ``sent_batches``: files it got)."""

    referrals: int = 0
    ledger_items: int = 0
    batch_entries: int = 0
    attempts: int = 0
    unsent_batches: int = 0
    sent_batches: int = 0
    delivered_items: int = 0

    def __add__(self, other: RemovalCounts) -> RemovalCounts:
        return RemovalCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def referrals_remove(referral_ids: Sequence[int]) -> RemovalCounts:
    """Delete ``referral_ids`` and their copies (see the module); counts of what went. Call it
    before taking any lock of your own on deliveries' rows (it may wait for a file run)."""
    ids = sorted(set(referral_ids))
    total = RemovalCounts()
    with transaction.atomic():
        for start in range(0, len(ids), _CHUNK):
            total += _remove_chunk(ids[start : start + _CHUNK])
    return total


# The file deliveries whose runs must not overlap the removal: those owing one of the
# referrals (a freeze would move it into a batch) and those holding one in an unsent batch.
_FILE_DELIVERIES = (
    "SELECT DISTINCT delivery_id FROM deliveries_deliveryitem "
    "WHERE referral_id {ids} AND status = 'file'",
    """SELECT DISTINCT b.delivery_id FROM deliveries_batch b
    JOIN deliveries_batchentry e ON e.batch_id = b.id
    WHERE b.status <> 'sent' AND e.referral_id {ids}""",
)
_ITEMS = "SELECT id, status FROM deliveries_deliveryitem WHERE referral_id {ids} ORDER BY id"
_ATTEMPTS_OF_REFERRALS = "DELETE FROM deliveries_attempt WHERE referral_id {ids} RETURNING id"
_ATTEMPTS_OF_ITEMS = "DELETE FROM deliveries_attempt WHERE item_id {ids} RETURNING id"
_DELETE_ITEMS = "DELETE FROM deliveries_deliveryitem WHERE id {ids}"
_CLIENTS = "SELECT id, client_id FROM referrals_referral WHERE id {ids}"
# Entries are found through the batches of the referral's client's deliveries: the entries'
# only index leads with the batch (a freeze writes a million entries at a time; one more
# index would cost every freeze).
_ENTRIES = """
DELETE FROM deliveries_batchentry
WHERE batch_id IN (SELECT b.id FROM deliveries_batch b
                   JOIN deliveries_delivery d ON d.id = b.delivery_id WHERE d.client_id = %s)
  AND referral_id {ids}
RETURNING batch_id
"""
_REFERRALS = "DELETE FROM referrals_referral WHERE id {ids} RETURNING id"


def _remove_chunk(ids: list[int]) -> RemovalCounts:
    # The claims first: a run holding one may be waiting for a row lock taken below.
    delivery_claims_await({pk for sql in _FILE_DELIVERIES for (pk,) in _rows(sql, ids)})
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    items = _rows(_ITEMS + lock, ids)
    item_ids = [pk for pk, _ in items]
    attempts = len(_rows(_ATTEMPTS_OF_REFERRALS, ids))
    attempts += len(_rows(_ATTEMPTS_OF_ITEMS, item_ids))
    execute_for_ids(_DELETE_ITEMS, item_ids, returns=False)
    by_client: dict[int, list[int]] = defaultdict(list)
    for pk, client_id in _rows(_CLIENTS, ids):
        by_client[client_id].append(pk)
    removed_from: Counter[int] = Counter()
    for client_id, client_ids in by_client.items():
        removed_from.update(batch for (batch,) in _rows(_ENTRIES, client_ids, before=[client_id]))
    unsent = _batches_shrink(removed_from)
    referrals = len(_rows(_REFERRALS, ids))
    return RemovalCounts(
        referrals=referrals,
        ledger_items=len(items),
        batch_entries=sum(removed_from.values()),
        attempts=attempts,
        unsent_batches=unsent,
        sent_batches=len(removed_from) - unsent,
        delivered_items=sum(status == "delivered" for _, status in items),
    )


def _batches_shrink(removed_from: Counter[int]) -> int:
    """Lower the row counts of the batches not yet sent that lost entries (a sent batch keeps
    the count it was sent with); how many there were."""
    unsent = (
        Batch.objects.filter(pk__in=list(removed_from)).exclude(status=Batch.Status.SENT)
        .order_by("pk").values_list("pk", flat=True)
    )  # fmt: skip
    shrunk = 0
    for pk in unsent:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE deliveries_batch SET rows = rows - %s WHERE id = %s",
                [removed_from[pk], pk],
            )
        shrunk += 1
    return shrunk


def _rows(sql: str, ids: list[int], *, before=()) -> list[tuple]:
    return execute_for_ids(sql, ids, before=before) if ids else []
