"""Which real-time items are due, read a bounded step at a time: what a chunk holding its
endpoint's token goes on with, and what the tick queues.

Each kind of due item is read apart, in the order of the index that leads with (delivery,
status, due time, id), at most as many as asked: a look costs about what it returns, however
large the backlog. As one query over every due item (``status IN (...)``, the tick's window
over all deliveries) each look sorted the whole backlog: every item an endpoint owes is due
at once when it is resumed.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from deliveries.models import Delivery
from rokt_platform.prepared import prepared_cursor

# Retries and items put off for the budget (pending, due); retries that failed (failed, due).
_DUE = (("pending", "next_attempt_at <= %(now)s"), ("failed", "next_attempt_at <= %(now)s"))
# The tick also takes pending items whose message never led to an attempt (never put off:
# no due time), once they are old enough to be taken for lost; and none it queued already for
# this attempt (queued before it fell due, or long ago: a lost message).
_LOST = ("pending", "next_attempt_at IS NULL AND created_at < %(lost)s")
_NOT_QUEUED = "(queued_at IS NULL OR queued_at < next_attempt_at OR queued_at < %(lost)s)"


def _due_statement(*, delivery: str, limit: str, for_tick: bool, where: str = "") -> str:
    """The oldest due items of ``delivery`` (an SQL expression), at most ``limit``, oldest
    first (never put off before those put off)."""
    kinds = [_LOST, *_DUE] if for_tick else list(_DUE)
    queued = f" AND {_NOT_QUEUED}" if for_tick else ""
    reads = []
    for number, (status, when) in enumerate(kinds):
        reads.append(f"""
    SELECT id, next_attempt_at FROM (
        SELECT id, next_attempt_at FROM deliveries_deliveryitem
        WHERE delivery_id = {delivery} AND status = '{status}' AND {when}{queued}
        ORDER BY next_attempt_at, id LIMIT {limit}
    ) AS kind{number}""")  # noqa: S608 (constants only)
    return f"""
SELECT id, next_attempt_at FROM ({" UNION ALL ".join(reads)}
) AS oldest {where}
ORDER BY next_attempt_at IS NOT NULL, next_attempt_at, id
LIMIT {limit}"""  # noqa: S608 (constants only)


_OPEN = "d.kind = 'api' AND d.active AND d.paused_at IS NULL"
_STILL_OPEN = (
    f"WHERE EXISTS (SELECT 1 FROM deliveries_delivery d WHERE d.id = %(delivery)s AND {_OPEN})"  # noqa: S608 (constants only)
)
_DUE_OF = _due_statement(
    delivery="%(delivery)s", limit="%(limit)s", for_tick=False, where=_STILL_OPEN
)
# PostgreSQL: every open delivery's due items in one statement, as many as its budget could
# take at once (a chunk per slot); SQLite: a statement per open delivery.
_DUE_FOR_TICK_PG = f"""
SELECT d.id, d.max_in_flight, due.id
FROM deliveries_delivery d CROSS JOIN LATERAL ({
    _due_statement(delivery="d.id", limit="d.max_in_flight * %(chunk)s", for_tick=True)
}
) AS due
WHERE {_OPEN}
ORDER BY d.id, due.next_attempt_at IS NOT NULL, due.next_attempt_at, due.id
"""  # noqa: S608 (constants only)
_DUE_FOR_TICK_OF = _due_statement(delivery="%(delivery)s", limit="%(limit)s", for_tick=True)


def open_api_deliveries():
    """Real-time deliveries that may send now: active, not paused (``_OPEN`` in SQL)."""
    return Delivery.objects.filter(kind=Delivery.Kind.API, active=True, paused_at__isnull=True)


def items_due_of(delivery_id: int, *, limit: int, now: dt.datetime) -> list[int]:
    """The delivery's oldest items due again (put off for its budget, retries): what a chunk
    that holds a token goes on with; none once the delivery is paused or made inactive (by
    hand, meanwhile)."""
    params = {"delivery": delivery_id, "now": _db_time(now), "limit": limit}
    with prepared_cursor() as cursor:
        cursor.execute(_DUE_OF, params)
        return [item_id for item_id, _ in cursor.fetchall()]


def items_due_for_tick(
    *, now: dt.datetime, lost_before: dt.datetime, chunk: int
) -> dict[int, tuple[int, list[int]]]:
    """For each open real-time delivery with something due: its ``max_in_flight`` and its
    oldest due items (never put off first), ``max_in_flight * chunk`` at most."""
    params = {"now": _db_time(now), "lost": _db_time(lost_before), "chunk": chunk}
    due: dict[int, tuple[int, list[int]]] = {}
    with prepared_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_DUE_FOR_TICK_PG, params)
            rows = cursor.fetchall()
        else:
            rows = []
            for delivery_id, max_in_flight in open_api_deliveries().values_list(
                "pk", "max_in_flight"
            ):
                limit = max_in_flight * chunk
                cursor.execute(_DUE_FOR_TICK_OF, {**params, "delivery": delivery_id,
                                                  "limit": limit})  # fmt: skip
                rows += [(delivery_id, max_in_flight, pk) for pk, _ in cursor.fetchall()]
    for delivery_id, max_in_flight, item_id in rows:
        due.setdefault(delivery_id, (max_in_flight, []))[1].append(item_id)
    return due


def _db_time(value: dt.datetime):
    return connection.ops.adapt_datetimefield_value(value)
