"""Referrals past their client's retention (``Client.retention_days``): anonymised, once no
delivery still owes them.

Owed means an item still to send (file, pending, sending, failed) or an entry in a batch not
yet sent. Each page's items are locked (in id order, skipping those a claim holds) and checked
in the transaction that anonymises: a referral with an owed item, or an item another
transaction holds, is left for the next run.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from deliveries.models import Batch, BatchEntry, DeliveryItem
from privacy.purge_ledger import OWED, key_pages
from referrals.anonymise import referrals_anonymise
from referrals.models import Client, Referral

ANONYMISE = Client.RetentionAction.ANONYMISE


def referrals_retention_purge(now: dt.datetime, batch_size: int) -> int:
    """Anonymise the referrals of clients whose action is anonymise; how many were."""
    done = 0
    clients = Client.objects.filter(retention_days__isnull=False, retention_action=ANONYMISE)
    for client in clients.order_by("pk"):
        cutoff = now - dt.timedelta(days=client.retention_days)
        expired = Referral.objects.filter(
            client=client, created_at__lt=cutoff, anonymised_at__isnull=True
        ).values_list("created_at", "pk")
        for page in key_pages(expired, batch_size, "created_at", "pk"):
            done += _anonymise_unowed([pk for _, pk in page])
    return done


def _anonymise_unowed(ids: list[int]) -> int:
    with transaction.atomic():
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
        return referrals_anonymise([pk for pk in ids if pk not in kept])


def retention_notes() -> list[str]:
    """What the purge leaves alone because it cannot do it yet."""
    asking = Client.objects.filter(
        retention_days__isnull=False, retention_action=Client.RetentionAction.DELETE
    ).order_by("name")
    return [
        f"{client.name}: referrals past {client.retention_days} days are to be deleted; "
        "deletion is not available yet, so nothing of theirs was removed."
        for client in asking
    ]
