"""The hottest statements find their rows by key: what one costs does not grow with the
table, whatever statistics PostgreSQL planned it with.

A prepared statement is planned once for any parameters ("generic plan"). Planned as
``id = ANY(ids) AND status IN (...)``, the send's claim walked the index of open items
(statistics taken when few were open) and only then kept the asked ids: behind a dead
endpoint's backlog every claim, of any delivery, read the whole backlog. Ingestion's look-up
of known external ids read every referral of the client."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from deliveries import api_due, api_items
from deliveries.models import DeliveryItem
from tests.factories import make_api_delivery, referral_record

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
BACKLOG = 1500
# Enough referrals that reading them all costs more than looking a few up by key, as it does
# in any real table (in a tiny one a plain scan is the better plan).
CLIENTS_REFERRALS = 6000


def _rows_read(table: str) -> int:
    """Rows of ``table`` this transaction has read so far, by scans and index look-ups."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()[0]


def _reads(action, table: str = "deliveries_deliveryitem") -> int:
    before = _rows_read(table)
    action()
    return _rows_read(table) - before


def _generic_plans() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")


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
    _generic_plans()
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


def test_a_look_for_the_due_backlog_reads_about_a_chunk(backlog):
    """An endpoint just resumed: everything it owes is due at once. Each chunk going on
    with the backlog looks for the next oldest due items."""
    delivery, ids = backlog
    now = timezone.now()
    items = DeliveryItem.objects.filter(delivery=delivery)
    items.update(next_attempt_at=now - dt.timedelta(minutes=1))
    # Retries due earlier than the rest, and fresh items due later: the oldest due go first.
    items.filter(pk__in=ids[-5:]).update(
        status="failed", next_attempt_at=now - dt.timedelta(minutes=2)
    )
    items.filter(pk__in=ids[:5]).update(next_attempt_at=now + dt.timedelta(minutes=1))

    def look():
        return api_due.items_due_of(delivery.pk, limit=50, now=now)

    look()  # prepares the statement
    assert look() == ids[-5:] + ids[5:50]
    assert _reads(look) <= 2 * 50 + 2  # a chunk's worth from each status at most
    delivery.paused_at = now
    delivery.save(update_fields=["paused_at"])
    assert look() == []


def test_the_tick_reads_what_the_budget_can_take_not_the_backlog(backlog):
    """An endpoint just resumed: every item it owes is due at once, and the tick takes each
    second as many as the endpoint's budget can (a chunk per slot), the oldest first."""
    from deliveries.api_dispatch import _LOST_AFTER, api_items_due
    from deliveries.api_runs import SEND_CHUNK

    delivery, ids = backlog
    now = timezone.now()
    items = DeliveryItem.objects.filter(delivery=delivery)
    items.update(next_attempt_at=now - dt.timedelta(minutes=1))
    lost = ids[-3:]  # never put off, their message lost long ago: taken first
    items.filter(pk__in=lost).update(next_attempt_at=None,
                                     created_at=now - dt.timedelta(hours=1))  # fmt: skip
    takes = delivery.max_in_flight * SEND_CHUNK

    assert api_items_due(now=now) == {delivery.pk: lost + ids[: takes - 3]}

    def look():  # the next tick's
        return api_due.items_due_for_tick(now=now, lost_before=now - _LOST_AFTER,
                                          chunk=SEND_CHUNK)  # fmt: skip

    assert look() == {delivery.pk: (delivery.max_in_flight, ids[takes - 3 : 2 * takes - 3])}
    assert _reads(look) <= 2 * takes + 3  # the items it skips (queued by the tick), its own
    assert api_items_due(now=now) == {delivery.pk: ids[takes - 3 : 2 * takes - 3]}


def test_ingestion_reads_the_referrals_it_stores_not_the_clients(client_a):
    """Planned without statistics (a new database, a PostgreSQL with autovacuum off, or
    before its first visit), the known external ids and the ledger's match each read every
    referral of the client."""
    from referrals.services import referrals_ingest

    def ingest(count: int) -> None:
        outcomes = referrals_ingest(records=[referral_record(client_a) for _ in range(count)])
        assert {outcome.status for outcome in outcomes} == {"created"}

    make_api_delivery(client_a, "https://crm.example.com/hook")
    ingest(CLIENTS_REFERRALS)
    _generic_plans()
    ingest(1)  # prepares the statements
    assert _reads(lambda: ingest(1), "referrals_referral") <= 2  # the ledger's, by key
    again = referral_record(client_a)
    referrals_ingest(records=[again])
    [outcome] = referrals_ingest(records=[again])
    assert outcome.status != "created"  # still found: the look-up works by key
