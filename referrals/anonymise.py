"""The one change a stored referral allows: its personal columns cleared, the row kept.

Referrals are immutable (``ImmutableQuerySet``, and a database trigger on both back ends:
migration 0008). Anonymising keeps what the counts need (client, campaign, when it was stored
and opted in, the collector's id, the offer's own columns) and clears everything that says who
the person was. The trigger lets exactly this update through: ``anonymised_at`` set once, every
personal column blank, every other column as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import models
from django.utils import timezone

from referrals.models import Referral

# Cleared to these values; the migration's trigger names the same columns (a test compares).
PERSONAL_FIELDS: dict[str, object] = {
    "email": "", "title": "", "first_name": "", "last_name": "", "gender": "",
    "birth_date": None, "age": None, "mobile": "", "address1": "", "address2": "", "city": "",
    "state": "", "zip_code": "", "country": "", "language": "", "ip_address": None,
    "user_agent": "", "browser": "", "browser_version": "", "os": "", "device": "",
    "ad_response": "", "confirmation_ref": "", "extra": {},
}  # fmt: skip


def referrals_anonymise(referral_ids: Sequence[int]) -> int:
    """Clear the personal columns of ``referral_ids`` not yet anonymised; how many were.

    The caller decides which referrals may go (nothing still owed to a delivery) and holds
    the transaction that checked it."""
    if not referral_ids:
        return 0
    rows = Referral.objects.filter(pk__in=referral_ids, anonymised_at__isnull=True)
    # The plain QuerySet's update: ImmutableQuerySet refuses every other one.
    return models.QuerySet.update(rows, anonymised_at=timezone.now(), **PERSONAL_FIELDS)
