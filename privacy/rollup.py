"""Daily figures of what the purge removes, added to ``deliveries.DeliveryDay`` in the same
transaction as the removal: the charts, health and totals read live rows plus these, so they
show the same before and after a purge."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Iterable

from deliveries.models import Delivery, DeliveryDay

COUNTS = ("delivered", "rejected", "attempts_delivered", "attempts_rejected", "attempts_failed")
UTC = dt.UTC


def delivery_days_add(rows: Iterable[tuple[int, dt.datetime, str]]) -> None:
    """Count each (delivery id, when, which figure) on its day in the client's time zone and
    in UTC. Only the purge writes these rows, one purge at a time (``privacy.runs``), so a
    read and a write in its transaction cannot lose an update."""
    rows = list(rows)
    if not rows:
        return
    zones = {
        pk: zoneinfo.ZoneInfo(name)
        for pk, name in Delivery.objects.filter(pk__in={r[0] for r in rows}).values_list(
            "pk", "client__time_zone"
        )
    }
    added: Counter = Counter()
    for delivery, when, figure in rows:
        if delivery in zones:  # a delivery deleted meanwhile takes its days with it
            key = (delivery, when.astimezone(zones[delivery]).date(), when.astimezone(UTC).date())
            added[key, figure] += 1
    keys = {key for key, _ in added}
    days = {
        (d.delivery_id, d.day, d.utc_day): d
        for d in DeliveryDay.objects.filter(
            delivery_id__in={k[0] for k in keys}, day__in={k[1] for k in keys}
        )
    }
    for key, figure in added:
        day = days.setdefault(key, DeliveryDay(delivery_id=key[0], day=key[1], utc_day=key[2]))
        setattr(day, figure, getattr(day, figure) + added[key, figure])
    DeliveryDay.objects.bulk_create(
        [days[key] for key in keys], update_conflicts=True,
        unique_fields=["delivery", "day", "utc_day"], update_fields=list(COUNTS),
    )  # fmt: skip
