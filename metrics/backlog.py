"""What each delivery owes and since when: counted by a worker every ``METRICS_BACKLOG_SECONDS``
into one row that /metrics reads, so a scrape costs the same whatever the backlog.

Counting is one pass over the backlog (an index-only scan of ``item_owed_age``), never over
the ledger, but it still grows with what is owed: 46 ms for 100,000 owed items on the
bench's loaded 2-core machine (bench/metrics.py), against 38 ms for a whole scrape that
reads this count. A scrape that finds the snapshot older than four periods (no worker, or
beat stopped) counts itself and stores the result, so the figures never freeze.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from deliveries.models import DeliveryItem
from metrics.models import BacklogSnapshot

OWED = ("file", "pending", "sending", "failed")  # what a delivery still owes (selectors.OWED)

# Delivery id -> (items owed, the oldest's created_at as a Unix time)
Backlog = dict[int, tuple[int, float]]


def backlog_count() -> Backlog:
    rows = (
        DeliveryItem.objects.filter(status__in=OWED)
        .values_list("delivery")
        .annotate(n=Count("*"), first=Min("created_at"))
        .order_by()
    )
    return {delivery: (count, first.timestamp()) for delivery, count, first in rows}


def backlog_snapshot_take() -> Backlog:
    """Count the backlog and store it for the scrapes; what it counted."""
    counted = backlog_count()
    owed = {str(delivery): list(figures) for delivery, figures in counted.items()}
    BacklogSnapshot.objects.bulk_create(
        [BacklogSnapshot(pk=1, taken_at=timezone.now(), owed=owed)],
        update_conflicts=True, unique_fields=["id"], update_fields=["taken_at", "owed"],
    )  # fmt: skip
    return counted


def backlog_for_scrape(now: dt.datetime) -> tuple[Backlog, float]:
    """The backlog and how old that count is, in seconds: the snapshot while it is recent,
    else counted now (and stored for the next scrape)."""
    snapshot = BacklogSnapshot.objects.filter(pk=1).values_list("taken_at", "owed").first()
    if snapshot is not None:
        taken_at, owed = snapshot
        age = (now - taken_at).total_seconds()
        if age <= 4 * settings.METRICS_BACKLOG_SECONDS:
            return {int(delivery): (n, first) for delivery, (n, first) in owed.items()}, age
    return backlog_snapshot_take(), 0.0
