"""Replaying real-time deliveries: one referral, everything not delivered, or a time range.

A replay makes the items due again and queues them; each keeps its ``webhook-id``, so a
receiver that already has a record can tell a replay from a new one.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from deliveries.api_items import items_update_in_id_order
from deliveries.models import Delivery, DeliveryItem

Status = DeliveryItem.Status


def _replay(delivery: Delivery, items) -> int:
    ids = list(items.values_list("pk", flat=True))
    if not ids:
        return 0
    from deliveries.api_runs import api_items_enqueue

    # In id order, as every statement on many items locks them: an erasure or a retention run
    # deleting some of these items at the same moment would otherwise deadlock with it.
    items_update_in_id_order(
        DeliveryItem.objects.filter(pk__in=ids).exclude(status=Status.SENDING),
        status=Status.PENDING, next_attempt_at=timezone.now(), lease_until=None,
        queued_at=timezone.now(),
    )  # fmt: skip

    transaction.on_commit(lambda: api_items_enqueue({delivery.pk: ids}), robust=True)
    return len(ids)


def replay_referral(delivery: Delivery, referral_id: int) -> int:
    items = DeliveryItem.objects.filter(delivery=delivery, referral_id=referral_id)
    return _replay(delivery, items)


def replay_not_delivered(delivery: Delivery) -> int:
    return _replay(
        delivery,
        DeliveryItem.objects.filter(delivery=delivery, status__in=[Status.FAILED, Status.REJECTED])
    )


def replay_range(delivery: Delivery, start: dt.datetime, end: dt.datetime) -> int:
    if end <= start:
        raise ValueError("The end of the range must be after its start.")
    return _replay(
        delivery,
        DeliveryItem.objects.filter(
            delivery=delivery, referral__created_at__gte=start, referral__created_at__lt=end
        ).exclude(status=Status.FILE)
    )
