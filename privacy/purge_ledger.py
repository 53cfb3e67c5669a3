"""Removing what deliveries no longer need: settled ledger items, the entries of batches sent
long ago, old attempt logs. Never anything still owed (a pending, sending or failed item, a
file item, an unsent batch).

Each target walks its candidates by key (never re-reading what it passed), and removes them
``batch_size`` at a time in short transactions that lock the rows first, in id order and
skipping rows another transaction holds (a claim, a tick, a replay): the purge never waits on
a delivery, never deadlocks with one, and re-checks each row under its lock, so a row that
became owed meanwhile (a replay) is left alone. What it removes is rolled up by day first
(``privacy.rollup``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q, QuerySet

from deliveries.ledger import ledger_forgotten
from deliveries.models import Attempt, Batch, BatchEntry, Delivery, DeliveryItem
from privacy.rollup import delivery_days_add
from referrals.models import Referral

OWED = ("file", "pending", "sending", "failed")  # deliveries.selectors.OWED


def _cutoff(now: dt.datetime, days: int) -> dt.datetime | None:
    """``days`` before ``now``; None for 0 (kept forever)."""
    return now - dt.timedelta(days=days) if days else None


def key_pages(rows: QuerySet, batch_size: int, *keys: str) -> Iterator[list]:
    """Pages of ``rows`` (values lists starting with ``keys``) in key order, each read after
    the last one's work is done (keyset: what the last page left is not read again), with a
    pause after each (``pace``)."""
    after: tuple | None = None
    while True:
        page = rows
        if after is not None:
            page = page.filter(_after(keys, after))
        started = time.perf_counter()
        chunk = list(page.order_by(*keys)[:batch_size])
        if not chunk:
            return
        yield chunk
        pace(started)
        after = tuple(chunk[-1][: len(keys)])


def pace(started: float) -> None:
    """Rest ``PURGE_PAUSE_RATIO`` times as long as the page since ``started`` took: the
    purge is never urgent, and on a small machine ingestion and sends need the cores."""
    if settings.PURGE_PAUSE_RATIO:
        time.sleep(settings.PURGE_PAUSE_RATIO * (time.perf_counter() - started))


def _after(keys: tuple[str, ...], values: tuple) -> Q:
    """Rows after ``values`` in the order of ``keys`` (a row comparison, spelled out)."""
    head, *rest = keys
    if not rest:
        return Q(**{f"{head}__gt": values[0]})
    later = Q(**{head: values[0]}) & _after(tuple(rest), values[1:])
    return Q(**{f"{head}__gt": values[0]}) | later


def _deliveries_locked(ids) -> None:
    """Lock these deliveries' rows first, in id order, as a backfill does before it reads the
    ledger: the purge then removes records and says so (``ledger_forgotten``) while no
    backfill can run between the two."""
    list(
        Delivery.objects.filter(pk__in=set(ids)).select_for_update(no_key=True)
        .order_by("pk").values_list("pk", flat=True)
    )  # fmt: skip


def _forget(pairs: list[tuple[int, int]]) -> None:
    """(delivery id, referral id) pairs whose ledger record is being removed: each delivery
    remembers the newest such referral's storage time."""
    stored = dict(
        Referral.objects.filter(pk__in={r for _, r in pairs}).values_list("pk", "created_at")
    )
    marks: dict[int, dt.datetime] = {}
    for delivery, referral in pairs:
        if referral in stored:
            marks[delivery] = max(marks.get(delivery, stored[referral]), stored[referral])
    ledger_forgotten(marks)


def _locked(rows: QuerySet) -> QuerySet:
    """``rows`` locked in id order, skipping those another transaction holds."""
    return rows.select_for_update(skip_locked=True).order_by("pk")


def _delete(model, ids: list[int]) -> int:
    """One DELETE of these rows (locked by the caller), without Django's collector: no
    SELECT of related rows first, no cascade (nothing here has rows that depend on it)."""
    if not ids:
        return 0
    return model.objects.filter(pk__in=ids)._raw_delete(DEFAULT_DB_ALIAS)


def ledger_items_purge(now: dt.datetime, batch_size: int) -> int:
    """Delete real-time items delivered (or rejected: stored) more than
    ``RETENTION_DELIVERED_ITEMS_DAYS`` ago."""
    cutoff = _cutoff(now, settings.RETENTION_DELIVERED_ITEMS_DAYS)
    if cutoff is None:
        return 0
    expired = Q(status="delivered", delivered_at__lt=cutoff) | Q(
        status="rejected", created_at__lt=cutoff
    )
    removed = 0
    candidates = DeliveryItem.objects.filter(expired).values_list("pk", "delivery_id")
    for page in key_pages(candidates, batch_size, "pk"):
        with transaction.atomic():
            _deliveries_locked(delivery for _, delivery in page)
            rows = list(
                _locked(DeliveryItem.objects.filter(expired, pk__in=[pk for pk, _ in page]))
                .values_list("pk", "delivery_id", "status", "delivered_at", "created_at",
                             "referral_id")
            )  # fmt: skip
            _forget([(row[1], row[5]) for row in rows])
            delivery_days_add(
                (delivery, delivered_at or created_at, status)
                for _, delivery, status, delivered_at, created_at, _ in rows
            )
            # Attempts are not cascaded: they have a retention of their own.
            removed += _delete(DeliveryItem, [r[0] for r in rows])
    return removed


def attempts_purge(now: dt.datetime, batch_size: int) -> int:
    """Delete attempts started more than ``RETENTION_ATTEMPTS_DAYS`` ago, except those of an
    item still owed (its history while it is retried)."""
    cutoff = _cutoff(now, settings.RETENTION_ATTEMPTS_DAYS)
    if cutoff is None:
        return 0
    old = Attempt.objects.filter(started_at__lt=cutoff)
    removed = 0
    for page in key_pages(old.values_list("started_at", "pk"), batch_size, "started_at", "pk"):
        with transaction.atomic():
            # Read, not locked: a claim holding an owed item must not hide it from this check.
            owed = set(
                DeliveryItem.objects.filter(
                    pk__in=Attempt.objects.filter(pk__in=[pk for _, pk in page])
                    .values("item_id"), status__in=OWED,
                ).values_list("pk", flat=True)
            )  # fmt: skip
            rows = list(
                _locked(old.filter(pk__in=[pk for _, pk in page]))
                .values_list("pk", "delivery_id", "started_at", "outcome", "test", "item_id")
            )  # fmt: skip
            gone = [row for row in rows if row[5] not in owed]
            delivery_days_add(
                (delivery, started_at, f"attempts_{outcome}")
                for _, delivery, started_at, outcome, test, _ in gone
                if not test
            )
            removed += _delete(Attempt, [r[0] for r in gone])
    return removed


def batch_entries_purge(now: dt.datetime, batch_size: int, since: dt.datetime | None) -> int:
    """Delete the entries of batches sent more than ``RETENTION_BATCH_ENTRIES_DAYS`` ago (the
    batch row stays, with its row count, files and checksums). ``since``: the last run's
    cutoff, before which every sent batch is already empty."""
    cutoff = _cutoff(now, settings.RETENTION_BATCH_ENTRIES_DAYS)
    if cutoff is None:
        return 0
    sent = Batch.objects.filter(status=Batch.Status.SENT, finished_at__lt=cutoff)
    if since is not None:
        sent = sent.filter(finished_at__gte=since)
    removed = 0
    batches = sent.order_by("pk").values_list("pk", "delivery_id")
    for batch_id, delivery_id in batches.iterator():
        while True:
            started = time.perf_counter()
            with transaction.atomic():
                _deliveries_locked([delivery_id])
                # A sent batch never changes; the lock only makes sure it was sent.
                batch = Batch.objects.filter(pk=batch_id, status=Batch.Status.SENT)
                if not _locked(batch).exists():
                    break
                entries = BatchEntry.objects.filter(batch_id=batch_id)
                rows = list(entries.values_list("pk", "referral_id")[:batch_size])
                _forget([(delivery_id, referral) for _, referral in rows])
                removed += _delete(BatchEntry, [pk for pk, _ in rows])
            pace(started)
            if len(rows) < batch_size:
                break
    return removed


def batch_entries_cutoff(now: dt.datetime) -> dt.datetime | None:
    return _cutoff(now, settings.RETENTION_BATCH_ENTRIES_DAYS)
