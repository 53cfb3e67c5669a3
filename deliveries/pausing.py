"""Pausing and resuming a delivery, of any kind.

A paused delivery sends nothing and keeps recording: what arrives meanwhile is owed, and
goes out on resume (files: unsent batches at the next run; real time: every open item at
once).
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from deliveries.models import Batch, Delivery


def delivery_pause(delivery: Delivery, reason: str) -> None:
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(paused_at=now, paused_reason=reason[:2000])
    delivery.paused_at, delivery.paused_reason = now, reason[:2000]


def delivery_resume(delivery: Delivery) -> None:
    """Unpause; what is owed is due now rather than after its back-off."""
    from deliveries.api_dispatch import api_items_resume

    Delivery.objects.filter(pk=delivery.pk).update(paused_at=None, paused_reason="")
    delivery.batches.filter(~Q(status=Batch.Status.SENT)).update(next_attempt_at=None)
    api_items_resume(delivery)
    delivery.paused_at, delivery.paused_reason = None, ""
