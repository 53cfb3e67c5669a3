"""Referrals past their client's retention (``Client.retention_days``): anonymised or deleted
(``Client.retention_action``), once no delivery still owes them.

Owed means an item still to send (file, pending, sending, failed) or an entry in a batch not
yet sent. Each page's items are locked (in id order, skipping those a claim holds) and checked
in the transaction that anonymises: a referral with an owed item, or an item another
transaction holds, is left for the next run. A deletion first adds what it takes away to the
daily figures (``privacy.rollup``): the referrals stored, the items delivered or rejected, the
attempts by outcome; then ``privacy.removal.referrals_remove`` deletes them with every copy.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q

from deliveries.models import Attempt, Batch, BatchEntry, DeliveryItem
from privacy.purge_ledger import OWED, key_pages
from privacy.removal import referrals_remove
from privacy.rollup import delivery_days_add, referral_days_add
from referrals.anonymise import referrals_anonymise
from referrals.models import Client, Referral

ANONYMISE = Client.RetentionAction.ANONYMISE


def referrals_retention_purge(now: dt.datetime, batch_size: int) -> int:
    """Anonymise or delete, as each client asks, the referrals past its retention; how many."""
    done = 0
    for client in Client.objects.filter(retention_days__isnull=False).order_by("pk"):
        cutoff = now - dt.timedelta(days=client.retention_days)
        expired = Referral.objects.filter(client=client, created_at__lt=cutoff)
        if client.retention_action == ANONYMISE:
            expired = expired.filter(anonymised_at__isnull=True)
        rows = expired.values_list("created_at", "pk")
        for page in key_pages(rows, batch_size, "created_at", "pk"):
            done += _settle(client.retention_action, [pk for _, pk in page])
    return done


def _settle(action: str, ids: list[int]) -> int:
    with transaction.atomic():
        unowed = _unowed(ids)
        if action == ANONYMISE:
            return referrals_anonymise(unowed)
        return _delete_counted(unowed)


def _delete_counted(ids: list[int]) -> int:
    if not ids:
        return 0
    referral_days_add(Referral.objects.filter(pk__in=ids).values_list("client_id", "created_at"))
    items = DeliveryItem.objects.filter(referral_id__in=ids, status__in=("delivered", "rejected"))
    delivery_days_add(
        (delivery, delivered_at or created_at, status)
        for delivery, status, delivered_at, created_at in items.values_list(
            "delivery_id", "status", "delivered_at", "created_at"
        )
    )
    attempts = Attempt.objects.filter(
        Q(referral_id__in=ids) | Q(item__referral_id__in=ids), test=False
    )
    delivery_days_add(
        (delivery, started_at, f"attempts_{outcome}")
        for delivery, started_at, outcome in attempts.values_list(
            "delivery_id", "started_at", "outcome"
        )
    )
    return referrals_remove(ids).referrals


def _unowed(ids: list[int]) -> list[int]:
    """Of ``ids``, those no delivery owes; their items locked until the caller's commit."""
    items = DeliveryItem.objects.filter(referral_id__in=ids)
    # Locked (id order, skipping what a claim holds) so none becomes owed before commit.
    held = dict(
        items.select_for_update(skip_locked=True, no_key=True).order_by("pk")
        .values_list("pk", "status")
    )  # fmt: skip
    kept = set()
    for pk, referral, status in items.values_list("pk", "referral_id", "status"):
        if pk not in held or held[pk] in OWED or status in OWED:
            kept.add(referral)  # owed, or held by a claim: next run
    unsent = Batch.objects.exclude(status=Batch.Status.SENT)
    kept.update(
        BatchEntry.objects.filter(batch__in=unsent, referral_id__in=ids)
        .values_list("referral_id", flat=True)
    )  # fmt: skip
    return [pk for pk in ids if pk not in kept]
