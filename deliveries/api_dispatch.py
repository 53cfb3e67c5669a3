"""Which real-time items to (re)send now: the database is the outbox, the broker a fast path.

Beat calls ``api_items_due`` every ``DELIVERY_API_TICK_SECONDS``. It returns, for deliveries
that are active and not paused:

- failed items whose retry is due;
- items left "sending" by a worker known dead (``deliveries.liveness``: at the first tick
  after it died), or past their lease (a worker the database cannot vouch for): sent again;
- pending items whose message never led to an attempt (the broker lost it, or it was queued
  while the delivery was paused): after ``_LOST_AFTER``, when a resume made them due, or at
  once when a worker died (its prefetched messages died with it).

``api_retries_overdue`` is the watchdog: retries that should have happened minutes ago mean
beat or the workers are not keeping up, and it says so in the log and on the dashboard.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from deliveries.api_due import items_due_for_tick, open_api_deliveries
from deliveries.api_items import items_mark_queued, items_update_in_id_order
from deliveries.api_runs import SEND_CHUNK, api_items_enqueue
from deliveries.budget import budget
from deliveries.liveness import TAG_PREFIX, live_worker_tags
from deliveries.models import Delivery, DeliveryItem

logger = logging.getLogger(__name__)
_LOST_AFTER = dt.timedelta(seconds=60)
_OVERDUE_AFTER = dt.timedelta(minutes=5)
_COUNT_AT_MOST = 10_000
# Items one tick queues for one delivery at most: a chunk (SEND_CHUNK) per free slot of its
# budget, so a slow endpoint's backlog is queued at the pace it is worked, never all of it
# every tick.
Status = DeliveryItem.Status


def api_items_due(*, now: dt.datetime | None = None) -> dict[int, list[int]]:
    """The items to queue now, by delivery: each delivery's oldest due ones, as many as the
    free slots of its budget can take (none behind an endpoint that has all it may have: they
    stay due, for a later tick), so one delivery's backlog never crowds out another's."""
    now = now or timezone.now()
    items = DeliveryItem.objects.filter(delivery__in=open_api_deliveries())
    gone = _workers_gone(items)
    orphaned = items.filter(Q(lease_until__lt=now) | Q(claimed_by__in=gone), status=Status.SENDING)
    # Back to "failed and due" first, so the claim in the send can take them.
    items_update_in_id_order(orphaned, status=Status.FAILED, next_attempt_at=now,
                             lease_until=None)  # fmt: skip
    if gone:
        # The messages a dead worker had taken and not yet begun died with it (the api queue
        # runs without acknowledgements): which they were nobody knows, so every item still
        # waiting for its first message is due now. A duplicate message costs a look.
        waiting = items.filter(status=Status.PENDING, next_attempt_at__isnull=True,
                               created_at__lt=now)  # fmt: skip
        items_update_in_id_order(waiting, next_attempt_at=now)
        budget().release_owned_by(gone)
        logger.warning("workers %s died: their sends are taken back", ", ".join(sorted(gone)))
    chosen: dict[int, list[int]] = {}
    due = items_due_for_tick(now=now, lost_before=now - _LOST_AFTER, chunk=SEND_CHUNK)
    for delivery_id, (max_in_flight, ids) in due.items():
        free = budget().free(delivery_id, max_in_flight)
        if free:
            chosen[delivery_id] = ids[: free * SEND_CHUNK]
    queued = [pk for ids in chosen.values() for pk in ids]
    items_mark_queued(queued, at=now)
    return chosen


def _workers_gone(items) -> set[str]:
    """The workers known dead since the last look: seen alive by an earlier tick, or holding
    a claim, and with no session now (read last: a worker that claims or is seen after it is
    never taken for dead). None on SQLite: leases only."""
    if connection.vendor != "postgresql":
        return set()
    seen = budget().workers_seen()
    claimers = set(
        items.filter(status=Status.SENDING, claimed_by__startswith=TAG_PREFIX)
        .values_list("claimed_by", flat=True).distinct()
    )  # fmt: skip
    live = live_worker_tags()
    gone = (seen | claimers) - live
    budget().workers_note(live=live, gone=gone)
    return gone


def api_items_queue_due() -> None:
    """The tick's work: queue what is due, as many items as each endpoint's budget can take."""
    api_items_enqueue(api_items_due())


def api_retries_overdue(*, now: dt.datetime | None = None) -> int:
    """How many due items are over ``_OVERDUE_AFTER`` late (``_COUNT_AT_MOST + 1`` meaning
    more than that many), said in the log. Counted only so far: it runs every tick, and a
    resumed endpoint's backlog may be millions of items, every one late."""
    now = now or timezone.now()
    late = (
        DeliveryItem.objects.filter(
            delivery__in=open_api_deliveries(),
            status__in=[Status.FAILED, Status.PENDING],
            next_attempt_at__lt=now - _OVERDUE_AFTER,
        )
        .values("pk")[: _COUNT_AT_MOST + 1]
        .count()
    )
    if late > _COUNT_AT_MOST:
        logger.error("watchdog: more than %d real-time retries are over %s late",
                     _COUNT_AT_MOST, _OVERDUE_AFTER)  # fmt: skip
    elif late:
        logger.error("watchdog: %d real-time retries are over %s late", late, _OVERDUE_AFTER)
    return late


def api_items_resume(delivery: Delivery) -> int:
    """On resume: everything the delivery still owes is due now."""
    owed = DeliveryItem.objects.filter(delivery=delivery,
                                       status__in=[Status.PENDING, Status.FAILED])  # fmt: skip
    return items_update_in_id_order(owed, next_attempt_at=timezone.now())
