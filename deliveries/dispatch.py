"""Which file deliveries should run now: due by schedule, or owed a retry.

Beat calls ``file_deliveries_due`` every ``DELIVERY_TICK_SECONDS``. A due delivery's
``next_run_at`` moves to the first slot after *now*, not after the slot that was due, so slots
missed while beat was down run once on catch-up, not once each. The move is a compare-and-set
on the old value: two beats (or two ticks) at once cannot both take the same slot, and even if
a run were queued twice, the run's claim and its freeze make the second one a no-op. A batch
left "sending" by a run that died is resent as soon as no run holds the delivery's claim.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from deliveries.channels import BATCH_KINDS, BATCH_SECRETS, channel_for
from deliveries.claims import delivery_claim
from deliveries.models import Batch, Delivery
from deliveries.schedules import ScheduleError, next_run_after


def delivery_schedule_reset(delivery: Delivery, *, now: dt.datetime | None = None) -> None:
    """Set the first run after a schedule is created or changed."""
    now = now or timezone.now()
    try:
        following = next_run_after(delivery, now) if channel_for(delivery.kind).batch else None
    except ScheduleError:
        following = None
    Delivery.objects.filter(pk=delivery.pk).update(next_run_at=following)
    delivery.next_run_at = following


def file_deliveries_due(*, now: dt.datetime | None = None) -> list[int]:
    now = now or timezone.now()
    # Secrets are not needed to schedule, and one that does not decrypt must not stop the tick.
    running = Delivery.objects.filter(
        active=True, paused_at__isnull=True, kind__in=BATCH_KINDS
    ).defer(*BATCH_SECRETS)
    for delivery in running.filter(next_run_at__isnull=True).select_related("client"):
        delivery_schedule_reset(delivery, now=now)  # set up outside the admin: start now
    due: list[int] = []
    for delivery in running.filter(next_run_at__lte=now).select_related("client"):
        try:
            following = next_run_after(delivery, now)
        except ScheduleError:
            following = None
        taken = Delivery.objects.filter(pk=delivery.pk, next_run_at=delivery.next_run_at).update(
            next_run_at=following
        )
        if taken:
            due.append(delivery.pk)
    owed = (
        Batch.objects.filter(delivery__in=running)
        .exclude(status=Batch.Status.SENT)
        .filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True))
        .values_list("delivery_id", flat=True)
        .distinct()
    )
    due += [pk for pk in owed if pk not in due]
    due += [pk for pk in _orphaned(running, now) if pk not in due]
    return due


def _orphaned(running, now: dt.datetime) -> list[int]:
    """Deliveries with a batch left "sending" by a run that died (its worker SIGKILLed, its
    machine gone): no one holds the claim. Resent at once rather than after the grace time."""
    sending = (
        Batch.objects.filter(delivery__in=running, status=Batch.Status.SENDING)
        .filter(next_attempt_at__gt=now)
        .values_list("delivery_id", flat=True)
        .distinct()
    )
    orphaned = []
    for delivery_id in sending:
        with delivery_claim(delivery_id) as free:
            if free:
                orphaned.append(delivery_id)
    return orphaned
