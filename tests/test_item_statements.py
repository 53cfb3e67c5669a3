"""The send's statements on items find them by key: what one costs does not grow with the
number of open items, whatever statistics PostgreSQL planned it with.

A prepared statement is planned once for any parameters ("generic plan"). Planned as
``id = ANY(ids) AND status IN (...)``, it walked the index of open items (statistics taken
when few were open) and only then kept the asked ids: behind a dead endpoint's backlog every
claim, of any delivery, read the whole backlog."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from deliveries import api_items
from deliveries.models import DeliveryItem
from tests.factories import make_api_delivery, referral_record

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
BACKLOG = 1500


def _rows_read() -> int:
    """Item rows this transaction has read so far, by scans and index look-ups."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = 'deliveries_deliveryitem'"
        )
        return cursor.fetchone()[0]


def _reads(action) -> int:
    before = _rows_read()
    action()
    return _rows_read() - before


@pytest.fixture
def backlog(client_a):
    """A delivery with ``BACKLOG`` open items, planned with statistics taken when none were
    open (as autovacuum leaves them when a backlog builds up between its visits), and every
    statement held to its generic plan."""
    from referrals.services import referrals_ingest

    delivery = make_api_delivery(client_a, "https://crm.example.com/hook")
    referrals_ingest(records=[referral_record(client_a) for _ in range(BACKLOG)])
    items = DeliveryItem.objects.filter(delivery=delivery)
    items.update(status="delivered")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_deliveryitem")
    items.update(status="pending")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    return delivery, list(items.order_by("pk").values_list("pk", flat=True))


def test_a_claim_reads_its_items_not_the_backlog(backlog):
    delivery, ids = backlog
    now = timezone.now()
    lease = now + dt.timedelta(minutes=1)

    def claim(item_ids):
        return api_items.items_claim_and_read(
            delivery.pk, item_ids, lease=lease, now=now, lookups=("email",)
        )

    claim(ids[:1])  # prepares the statement
    read = []
    for item_id in ids[1:4]:
        read.append(_reads(lambda item_id=item_id: claim([item_id])))
    assert max(read) <= 3, read  # the item, by key, and again as the UPDATE's target
    claimed = claim(ids[4:6])
    assert [item.id for item in claimed.items] == ids[4:6]
    assert DeliveryItem.objects.get(pk=ids[4]).status == "sending"


def test_putting_off_putting_back_and_extending_read_their_items_only(backlog):
    delivery, ids = backlog
    now = timezone.now()
    later = now + dt.timedelta(minutes=5)
    api_items.items_claim_and_read(delivery.pk, ids[:10], lease=later, now=now, lookups=())
    for action in (
        lambda: api_items.items_defer(ids[20:22], due=later),
        lambda: api_items.items_extend_lease(ids[:2], lease=later),
        lambda: api_items.items_put_back(ids[2:4], status="pending", due=now),
    ):
        action()  # prepares the statement
        assert _reads(action) <= 6
    assert DeliveryItem.objects.get(pk=ids[20]).next_attempt_at == later
    assert DeliveryItem.objects.get(pk=ids[0]).lease_until == later
    assert DeliveryItem.objects.get(pk=ids[2]).status == "pending"
