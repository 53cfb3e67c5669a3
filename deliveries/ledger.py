"""The ledger: what each delivery owes, written in the transaction that stores the referral.

``ledger_record`` runs inside that transaction (``referrals.services.referrals_insert``,
``Referral.save`` and ``Referral.objects.bulk_create`` all call it), so a referral and the
items that promise its delivery commit together or not at all. A delivery never has to guess
what is new from timestamps or ids, which would skip rows whose transaction commits late.

One INSERT ... SELECT per call: the database matches referrals to deliveries by client,
campaign scope and start time, whatever the number of referrals or deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.utils import timezone

# SQLite allows 999 parameters in older builds; PostgreSQL takes the ids as one array.
_SQLITE_CHUNK = 900

_MATCH = """
INSERT INTO deliveries_deliveryitem (delivery_id, referral_id, redelivery, created_at)
SELECT d.id, r.id, {false}, %s
FROM referrals_referral r
JOIN deliveries_delivery d ON d.client_id = r.client_id
WHERE r.id {ids}
  AND d.active
  AND r.created_at >= d.starts_at
  AND (d.all_campaigns OR EXISTS (
        SELECT 1 FROM deliveries_delivery_campaigns dc
        WHERE dc.delivery_id = d.id AND dc.campaign_id = r.campaign_id))
"""


def ledger_record(referral_ids: Sequence[int]) -> None:
    """Record one pending item per active delivery that each stored referral matches."""
    if not referral_ids:
        return
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_MATCH.format(false="FALSE", ids="= ANY(%s)"), [now, list(referral_ids)])
            return
        for start in range(0, len(referral_ids), _SQLITE_CHUNK):
            chunk = list(referral_ids[start : start + _SQLITE_CHUNK])
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(_MATCH.format(false="0", ids=f"IN ({placeholders})"), [now, *chunk])
