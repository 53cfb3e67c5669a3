"""Pausing and resuming a delivery, of any kind.

A paused delivery sends nothing and keeps recording: what arrives meanwhile is owed, and
goes out on resume (files: unsent batches at the next run; real time: every open item at
once).
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from deliveries.alerts import delivery_failed
from deliveries.models import Batch, Delivery
from deliveries.secrets import EncryptedTextField, SecretUnreadable


def delivery_pause(delivery: Delivery, reason: str) -> None:
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(paused_at=now, paused_reason=reason[:2000])
    delivery.paused_at, delivery.paused_reason = now, reason[:2000]


def delivery_stop(delivery: Delivery, reason: str, error: str) -> None:
    """A failure retrying cannot fix (a wrong host key, 410 Gone, a configuration error):
    pause at once, saying why, and warn the account managers now rather than after
    ``DELIVERY_WARN_AFTER_MINUTES``. The one way every engine stops a delivery."""
    delivery_pause(delivery, reason)
    delivery_failed(delivery, error, permanent=True)


def delivery_resume(delivery: Delivery) -> None:
    """Unpause; what is owed is due now rather than after its back-off."""
    from deliveries.api_dispatch import api_items_resume

    Delivery.objects.filter(pk=delivery.pk).update(paused_at=None, paused_reason="")
    delivery.batches.filter(~Q(status=Batch.Status.SENT)).update(next_attempt_at=None)
    api_items_resume(delivery)
    delivery.paused_at, delivery.paused_reason = None, ""


def delivery_pause_unreadable(delivery_id: int, exc: SecretUnreadable) -> Delivery:
    """A stored secret that no configured key decrypts (the keys changed): pause the delivery
    and warn at once; it sends nothing until an account manager enters its secrets again."""
    secrets = [f.name for f in Delivery._meta.fields if isinstance(f, EncryptedTextField)]
    delivery = Delivery.objects.defer(*secrets).select_related("client").get(pk=delivery_id)
    delivery_stop(delivery, f"{exc}: enter the secrets again", str(exc))
    return delivery
