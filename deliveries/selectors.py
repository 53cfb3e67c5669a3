"""Reads for the admin: delivery health, what was delivered per day, worker heartbeats."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from deliveries.channels import SECRETS as CHANNEL_SECRETS
from deliveries.models import (
    Attempt,
    Batch,
    Delivery,
    DeliveryDay,
    DeliveryItem,
    WorkerHeartbeat,
)
from referrals.tenancy import is_account_manager, scope_to_user

SECRETS = CHANNEL_SECRETS  # every channel's: never needed to show health
# What a delivery still owes: file items not yet in a batch, real-time items not yet answered.
OWED = Q(items__status__in=["file", "pending", "sending", "failed"])


def worker_heartbeat_age_seconds() -> float | None:
    """Seconds since any worker last beat, or ``None`` if none ever has."""
    latest = WorkerHeartbeat.objects.aggregate(latest=Max("beat_at"))["latest"]
    return None if latest is None else round((timezone.now() - latest).total_seconds(), 1)


def failing_deliveries_context(request) -> dict:
    """What every admin page adds (``rokt_platform.admin_site``): the deliveries that keep
    failing, for account managers."""
    if not is_account_manager(request.user):
        return {}
    return {"failing_deliveries": deliveries_failing_for(request.user)}


def deliveries_failing_for(user) -> list:
    """Active deliveries the user may see that are paused or failing, worst first."""
    failing = (
        Delivery.objects.filter(active=True)
        .defer(*SECRETS)
        .filter(Q(failing_since__isnull=False) | Q(paused_at__isnull=False))
    )
    return list(
        scope_to_user(failing, user, client_path="client")
        .select_related("client")
        .order_by("failing_since")[:20]
    )


def deliveries_health(*, client=None) -> list:
    """Each active delivery (of ``client``, or all) with what an account manager checks first:
    state, last success, failing since, what it still owes, its last batch."""
    last = Batch.objects.filter(delivery=OuterRef("pk")).order_by("-number")
    deliveries = (
        Delivery.objects.filter(active=True)
        .defer(*SECRETS)
        .select_related("client")
        .annotate(
            pending=Count("items", filter=OWED),
            last_batch_number=Subquery(last.values("number")[:1]),
            last_batch_status=Subquery(last.values("status")[:1]),
            last_batch_finished=Subquery(last.values("finished_at")[:1]),
        )
        .order_by("client__name", "name")
    )
    if client is not None:
        deliveries = deliveries.filter(client=client)
    return list(deliveries)


def delivered_per_day(*, client=None, days: int = 30) -> dict:
    """Referrals delivered per day, in files (rows of batches sent that day) and in real time
    (items delivered that day), by the day's date in the client's zone (UTC for all)."""
    zone = client.zone if client else zoneinfo.ZoneInfo("UTC")
    today = timezone.now().astimezone(zone).date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time.min, tzinfo=zone)
    sent = Batch.objects.filter(status=Batch.Status.SENT, finished_at__gte=since)
    live = DeliveryItem.objects.filter(status="delivered", delivered_at__gte=since)
    if client is not None:
        sent = sent.filter(delivery__client=client)
        live = live.filter(delivery__client=client)
    totals: dict = {}
    files = (
        sent.annotate(day=TruncDate("finished_at", tzinfo=zone))
        .values("day").annotate(n=Sum("rows")).order_by()
    )  # fmt: skip
    real_time = (
        live.annotate(day=TruncDate("delivered_at", tzinfo=zone))
        .values("day").annotate(n=Count("id")).order_by()
    )  # fmt: skip
    # What the retention purge removed was rolled up by day first (``DeliveryDay``).
    day_field = "day" if client is not None else "utc_day"
    purged = DeliveryDay.objects.filter(**{f"{day_field}__gte": first}, delivered__gt=0)
    if client is not None:
        purged = purged.filter(delivery__client=client)
    rolled_up = purged.values_list(day_field).annotate(n=Sum("delivered")).order_by()
    for row in [*files, *real_time]:
        totals[row["day"]] = totals.get(row["day"], 0) + (row["n"] or 0)
    for day, n in rolled_up:
        totals[day] = totals.get(day, 0) + n
    return totals


def recent_batches(*, client, limit: int = 10) -> list:

    return list(
        Batch.objects.filter(delivery__client=client)
        .select_related("delivery")
        .order_by("-created_at")[:limit]
    )


def referrals_tried_since(since: dt.datetime, *, delivered: bool = False) -> Coalesce:
    """A subquery on a delivery (``OuterRef("pk")``): how many referrals it tried to send since
    ``since`` (test sends aside), or how many of those are delivered now. Referrals, not
    attempts: one that got through on its third try counts once, as delivered. Served by the
    (delivery, started_at) index of attempts."""
    attempts = Attempt.objects.filter(delivery=OuterRef("pk"), test=False, started_at__gte=since)
    if delivered:
        attempts = attempts.filter(item__status=DeliveryItem.Status.DELIVERED)
    counted = (
        attempts.order_by().values("delivery")
        .annotate(n=Count("item", distinct=True)).values("n")
    )  # fmt: skip
    return Coalesce(Subquery(counted), 0)


def api_health(delivery) -> dict:
    """A real-time delivery at a glance: what it owes, the last 24 hours, overdue retries."""
    now = timezone.now()
    open_items = DeliveryItem.objects.filter(
        delivery=delivery, status__in=["pending", "sending", "failed"]
    )
    since = now - dt.timedelta(days=1)
    day = (
        Delivery.objects.filter(pk=delivery.pk)
        .annotate(tried=referrals_tried_since(since),
                  delivered=referrals_tried_since(since, delivered=True))
        .values("tried", "delivered").get()
    )  # fmt: skip
    tried = day["tried"]
    # A test send changes no real figure; shown beside them so a success is seen at once.
    last_test = (
        delivery.attempts.filter(test=True, started_at__gte=since).order_by("-started_at").first()
    )
    return {
        "pending": open_items.count(),
        "tried_24h": tried,
        "delivered_24h": day["delivered"],
        "delivered_rate_24h": round(100 * day["delivered"] / tried) if tried else None,
        "overdue": open_items.filter(next_attempt_at__lt=now - dt.timedelta(minutes=5)).count(),
        "last_test": last_test,
    }
