"""Real-time claims never deadlock: two workers claiming overlapping items lock them in one
order, whatever plan each connection's prepared statement got.

Each connection plans its own prepared statements, with the statistics of the moment: one
may find the asked items through the primary key (id order), another by a scan (the order
the rows lie in the table, which updates keep changing). Locked in the order found, two
claims of overlapping items each took one the other wanted next: ``DeadlockDetected`` in the
claim's ``FOR UPDATE`` under load."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from deliveries import api_dispatch, api_items
from deliveries.models import DeliveryItem
from referrals.services import referrals_ingest
from tests.factories import make_api_delivery, referral_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

# A connection planning by key, and one planning a scan of the table.
BY_KEY = ("SET enable_seqscan = off", "SET enable_bitmapscan = off")
BY_SCAN = ("SET enable_indexscan = off", "SET enable_indexonlyscan = off",
           "SET enable_bitmapscan = off")  # fmt: skip


def _waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("other", ["another claim", "the tick", "a resume"])
def test_a_claim_and_another_locking_overlapping_items_in_opposite_orders_never_deadlock(
    client_a, other
):
    delivery = make_api_delivery(client_a, "https://crm.example.com/hook")
    referrals_ingest(records=[referral_record(client_a) for _ in range(3)])
    items = DeliveryItem.objects.filter(delivery=delivery)
    first, middle, last = items.order_by("pk").values_list("pk", flat=True)
    now = timezone.now()
    # Due (put off for the budget a minute ago), and updated last first: a scan of the table
    # now finds them in the opposite order of ids.
    for pk in (last, middle, first):
        items.filter(pk=pk).update(next_attempt_at=now - dt.timedelta(minutes=1))

    lease = now + dt.timedelta(minutes=1)
    claimed: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claim(name: str, plan: tuple[str, ...], ids: list[int]) -> None:
        try:
            with connection.cursor() as cursor:
                for setting in plan:
                    cursor.execute(setting)
            if name == "the tick":  # queues what is due: the items it names are marked
                claimed[name] = api_dispatch.api_items_due(now=now).get(delivery.pk, [])
                return
            if name == "a resume":  # makes every item still owed due now
                claimed[name] = api_dispatch.api_items_resume(delivery)
                return
            taken = api_items.items_claim_and_read(delivery.pk, ids, lease=lease, now=now,
                                                   lookups=("email",))  # fmt: skip
            claimed[name] = [item.id for item in taken.items]
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # A third connection holds the middle item, so that each claim has taken its first item
    # and waits for the middle one when it is let go: then each wants what the other holds,
    # unless both lock in one order.
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT id FROM deliveries_deliveryitem WHERE id = %s FOR UPDATE", [middle]
            )
            threads = [
                threading.Thread(target=claim, args=("one claim", BY_KEY, [first, middle, last])),
                threading.Thread(target=claim, args=(other, BY_SCAN, [last, middle, first])),
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while _waiting_for_locks() < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert errors == []
            assert _waiting_for_locks() == 2, "both claims should be waiting for a lock"
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    if other == "a resume" and claimed["a resume"]:
        # The resume went first: every item due at its own later "now", not yet at the
        # claim's, which then took none. Either way, one after the other.
        assert claimed == {"one claim": [], "a resume": 3}
        assert set(items.values_list("status", "attempts")) == {("pending", 0)}
        return
    assert set(items.values_list("status", "attempts")) == {("sending", 1)}
    if other == "another claim":  # each item claimed once, by one of them
        assert sorted(claimed["one claim"] + claimed[other]) == [first, middle, last]
    elif other == "a resume":  # the claim went first: nothing left owed to make due
        assert claimed == {"one claim": [first, middle, last], "a resume": 0}
    else:  # claimed by the claim, and marked queued by the tick, one after the other
        assert claimed == {"one claim": [first, middle, last], "the tick": [first, middle, last]}
        assert items.filter(queued_at=now).count() == 3
