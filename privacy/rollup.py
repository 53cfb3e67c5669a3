"""Daily figures of what the purge removes, added to ``deliveries.DeliveryDay`` and
``referrals.ReferralDay`` in the same transaction as the removal: the charts, health and
totals read live rows plus these, so they show the same before and after a purge."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Iterable

from deliveries.models import Delivery, DeliveryDay
from referrals.models import Client, ReferralDay

COUNTS = ("delivered", "rejected", "attempts_delivered", "attempts_rejected", "attempts_failed")
UTC = dt.UTC


def delivery_days_add(rows: Iterable[tuple[int, dt.datetime, str]]) -> None:
    """Count each (delivery id, when, which figure) on its day in the client's time zone and
    in UTC. Only the purge writes these rows, one purge at a time (``privacy.runs``), so a
    read and a write in its transaction cannot lose an update."""
    rows = list(rows)
    zones = _zones(Delivery.objects, "client__time_zone", rows)
    _days_add(DeliveryDay, "delivery", _by_day(rows, zones), COUNTS)


def referral_days_add(rows: Iterable[tuple[int, dt.datetime]]) -> None:
    """Count each (client id, when stored) referral on its day in the client's time zone and
    in UTC, as ``delivery_days_add`` does."""
    rows = [(client, when, "stored") for client, when in rows]
    zones = _zones(Client.objects, "time_zone", rows)
    _days_add(ReferralDay, "client", _by_day(rows, zones), ("stored",))


def _zones(objects, zone_field: str, rows: list[tuple]) -> dict[int, zoneinfo.ZoneInfo]:
    """The time zone of each owner (first item of a row) that still exists."""
    owners = objects.filter(pk__in={row[0] for row in rows}).values_list("pk", zone_field)
    return {pk: zoneinfo.ZoneInfo(name) for pk, name in owners}


def _by_day(rows: list[tuple[int, dt.datetime, str]], zones: dict) -> Counter:
    """{((owner id, owner's day, UTC day), figure): count}; an owner deleted meanwhile takes
    its days with it."""
    added: Counter = Counter()
    for owner, when, figure in rows:
        if owner in zones:
            key = (owner, when.astimezone(zones[owner]).date(), when.astimezone(UTC).date())
            added[key, figure] += 1
    return added


def _days_add(model, owner: str, added: Counter, figures: tuple[str, ...]) -> None:
    """Add ``added`` ({((owner id, day, utc day), figure): n}) to ``model``'s rows."""
    keys = {key for key, _ in added}
    days = {
        (getattr(d, f"{owner}_id"), d.day, d.utc_day): d
        for d in model.objects.filter(
            **{f"{owner}_id__in": {k[0] for k in keys}}, day__in={k[1] for k in keys}
        )
    }
    for key, figure in added:
        day = days.setdefault(key, model(**{f"{owner}_id": key[0]}, day=key[1], utc_day=key[2]))
        setattr(day, figure, getattr(day, figure) + added[key, figure])
    model.objects.bulk_create(
        [days[key] for key in keys], update_conflicts=True,
        unique_fields=[owner, "day", "utc_day"],
        update_fields=list(figures),
    )  # fmt: skip
