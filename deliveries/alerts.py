"""Telling account managers that a delivery keeps failing, and that it recovered.

A delivery failing for ``DELIVERY_WARN_AFTER_MINUTES`` (or failing in a way retries cannot
fix) sends one email to the account managers and shows in the admin's banner until it
succeeds again; one warning per failing spell, never one per attempt.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from deliveries.models import Delivery
from referrals.roles import ACCOUNT_MANAGERS

logger = logging.getLogger(__name__)


def delivery_failed(delivery: Delivery, error: str, *, permanent: bool = False) -> None:
    now = timezone.now()
    updates = {"last_error": error[:2000]}
    if delivery.failing_since is None:
        updates["failing_since"] = now
    Delivery.objects.filter(pk=delivery.pk).update(**updates)
    for name, value in updates.items():
        setattr(delivery, name, value)
    if permanent or _failing_for_long(delivery, now):
        delivery_warn(delivery)


def delivery_succeeded(delivery: Delivery) -> None:
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        last_success_at=now, failing_since=None, last_error="", warned_at=None
    )
    delivery.last_success_at, delivery.failing_since = now, None
    delivery.last_error, delivery.warned_at = "", None


def delivery_warn(delivery: Delivery) -> bool:
    """Email the account managers once per failing spell; True if this call sent it."""
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery.pk, warned_at__isnull=True).update(warned_at=now)
    if not claimed:  # already warned (perhaps by another worker at the same moment)
        return False
    delivery.warned_at = now
    recipients = account_manager_emails()
    if not recipients:
        logger.warning("delivery %s keeps failing; no account manager has an email", delivery.pk)
        return True
    since = delivery.failing_since or now
    state = f"paused: {delivery.paused_reason}" if delivery.paused_at else "retrying"
    send_mail(
        subject=f"[Rokt] Delivery failing: {delivery.client.name} / {delivery.name}",
        message=(
            f"The {delivery.get_kind_display()} delivery '{delivery.name}' of "
            f"{delivery.client.name} has been failing since {since:%Y-%m-%d %H:%M} UTC "
            f"({state}).\n\nLast error: {delivery.last_error}\n\n"
            "Nothing is lost: what it owes waits in its ledger and goes out once it works."
        ),
        from_email=None,
        recipient_list=recipients,
        fail_silently=True,  # a mail server outage must not fail the delivery run itself
    )
    return True


def deliveries_warn_overdue() -> int:
    """Warn for every delivery failing long enough and not yet warned (run by the tick)."""
    cutoff = timezone.now() - dt.timedelta(minutes=settings.DELIVERY_WARN_AFTER_MINUTES)
    warned = 0
    for delivery in Delivery.objects.select_related("client").filter(
        failing_since__lte=cutoff, warned_at__isnull=True, active=True
    ):
        warned += delivery_warn(delivery)
    return warned


def account_manager_emails() -> list[str]:
    users = (
        get_user_model()
        .objects.filter(Q(groups__name=ACCOUNT_MANAGERS) | Q(is_superuser=True), is_active=True)
        .exclude(email="")
    )
    return sorted(set(users.values_list("email", flat=True)))


def _failing_for_long(delivery: Delivery, now: dt.datetime) -> bool:
    since = delivery.failing_since or now
    return now - since >= dt.timedelta(minutes=settings.DELIVERY_WARN_AFTER_MINUTES)
