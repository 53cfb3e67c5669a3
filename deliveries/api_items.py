"""The ledger statements of real-time sends, few and cheap, for one item or a chunk alike.

A send is a handful of small statements, run hundreds of times a second: compiling ORM
queries and building 70-column model instances for each cost more CPU than the HTTP exchange
itself (docs/PERFORMANCE.md). So the hot statements are written once, in SQL both PostgreSQL
and SQLite run (``UPDATE ... RETURNING``; ids as one array on PostgreSQL, a list of
parameters on SQLite), and return plain tuples. On PostgreSQL the claim also reads the
delivery's live columns and the referrals (one round trip), and the hot statements are
prepared once per connection (``rokt_platform.prepared``).

Times go in through the backend's own adaptation and come back aware, whatever the backend.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from deliveries.liveness import worker_tag
from referrals.models import Referral
from rokt_platform.prepared import execute_for_ids, prepared_cursor


@dataclass(frozen=True)
class OpenItem:
    """An item that may be sent, with its delivery's live columns (read with it: they change
    between sends; the rest of the delivery is cached, keyed by ``delivery_updated_at``)."""

    id: int
    delivery_id: int
    status: str
    next_attempt_at: dt.datetime | None
    delivery_updated_at: dt.datetime
    delivery_open: bool
    last_success_at: dt.datetime | None
    failing_since: dt.datetime | None


@dataclass(frozen=True, order=True)
class ClaimedItem:
    id: int
    referral_id: int
    attempts: int
    created_at: dt.datetime
    # As it was before the claim: what a put-back restores, and whether it had been put off.
    status_before: str = field(default="pending", compare=False)
    due_before: dt.datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DeliveryLive:
    """The delivery's columns that change between saves, as the claim saw them."""

    updated_at: dt.datetime
    last_success_at: dt.datetime | None
    failing_since: dt.datetime | None


@dataclass(frozen=True)
class Claim:
    """What a claim took: the items (oldest first), the delivery's live columns (``None``
    when it took nothing), and the items' referrals as the values of the asked lookups."""

    items: list[ClaimedItem]
    live: DeliveryLive | None
    rows: dict[int, tuple]


@dataclass(frozen=True)
class ItemRecord:
    """One attempt and the item's state after it."""

    item_id: int
    delivery_id: int
    referral_id: int
    number: int
    started_at: dt.datetime
    method: str
    url: str
    request_headers: list
    request_body: str
    status_code: int | None
    response_headers: list
    response_body: str
    latency_ms: float | None
    error_class: str
    outcome: str
    attempt_reason: str
    item_status: str
    item_reason: str
    delivered_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


# Statements that name their items by id come in two forms: PostgreSQL's finds the items by
# key first (``_KEY_FIRST``), the other's (SQLite) names them and their state in one WHERE.
#
# Why: PostgreSQL plans a prepared statement once for any ids ("generic plan"), and with
# ``id = ANY(%s) AND status IN (...)`` it often chose to walk the index of open items
# (``item_api_open``, statistics showing few open) or of the delivery's items, and only then
# to keep the asked ids: a claim that read every open item, tens of thousands behind a dead
# endpoint, for each item sent to any endpoint. Found first by key (the only condition it
# can look up by), an item costs one index probe whatever the backlog; the state is tested
# on the row found, locked (``FOR UPDATE``: what the row is when the statement updates it,
# a concurrent claim waited for, as an UPDATE would).
#
# Locked in id order (``ORDER BY`` comes before the locks): each connection plans its own
# prepared statement, and one that found the items by a scan locked them in the order they
# lie in the table, another by key in id order; two claims of a backlog's overlapping items
# then each held one the other wanted (``DeadlockDetected``, tests/test_claim_locks.py).
_KEY_FIRST = """
WITH o AS MATERIALIZED (
    SELECT id, delivery_id, status, next_attempt_at FROM deliveries_deliveryitem
    WHERE id = ANY(%s) {lock}
)
"""
_LOCKED = _KEY_FIRST.format(lock="ORDER BY id FOR UPDATE")


@dataclass(frozen=True)
class _ForItems:
    """One statement on items named by id: ``postgresql`` takes the ids first, then the
    other parameters in the order ``other`` (``{ids}``: ``IN (...)``) takes them."""

    postgresql: str
    other: str

    def execute(self, ids: Sequence[int], *, before=(), after=(), returns: bool = True):
        if connection.vendor == "postgresql":
            return execute_for_ids(self.postgresql, ids, after=[*before, *after],
                                   returns=returns)  # fmt: skip
        return execute_for_ids(self.other, ids, before=before, after=after, returns=returns)


_OPEN_ITEMS = _ForItems(
    _KEY_FIRST.format(lock="") + """
SELECT o.id, o.delivery_id, o.status, o.next_attempt_at, d.updated_at,
       d.active AND d.paused_at IS NULL, d.last_success_at, d.failing_since
FROM o JOIN deliveries_delivery d ON d.id = o.delivery_id
WHERE o.status IN ('pending', 'failed')
""",
    """
SELECT i.id, i.delivery_id, i.status, i.next_attempt_at, d.updated_at,
       d.active AND d.paused_at IS NULL, d.last_success_at, d.failing_since
FROM deliveries_deliveryitem i JOIN deliveries_delivery d ON d.id = i.delivery_id
WHERE i.id {ids} AND i.status IN ('pending', 'failed')
""",
)
# PostgreSQL: one delivery's items, only while it is active and not paused; ``o`` is the
# item's row as the statement found it: its status and due time before the claim. Then, in
# the same round trip, the delivery's live columns and the referrals (``{values}``).
_CLAIM_AND_READ_PG = _LOCKED + """,
claimed AS (
    UPDATE deliveries_deliveryitem i
    SET status = 'sending', lease_until = %s, claimed_by = %s, attempts = i.attempts + 1
    FROM o, deliveries_delivery d
    WHERE i.id = o.id AND o.delivery_id = %s AND d.id = o.delivery_id
      AND d.active AND d.paused_at IS NULL AND o.status IN ('pending', 'failed')
      AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %s)
    RETURNING i.id, i.referral_id, i.attempts, i.created_at, o.status, o.next_attempt_at,
              d.updated_at, d.last_success_at, d.failing_since
)
SELECT claimed.*, v.* FROM claimed LEFT JOIN ({values}) v ON v."pk" = claimed.referral_id
"""  # noqa: S608 (constants only)
_CLAIMED_COLUMNS = 9
# SQLite: the same claim, its RETURNING limited to the updated table's columns.
_CLAIM_OF_DELIVERY_APART = """
UPDATE deliveries_deliveryitem
SET status = 'sending', lease_until = %s, claimed_by = %s, attempts = attempts + 1
WHERE id {ids} AND delivery_id = %s AND status IN ('pending', 'failed')
  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
  AND EXISTS (SELECT 1 FROM deliveries_delivery d
              WHERE d.id = delivery_id AND d.active AND d.paused_at IS NULL)
RETURNING id, referral_id, attempts, created_at
"""
_EXTEND_LEASE = _ForItems(
    _LOCKED + """
UPDATE deliveries_deliveryitem i SET lease_until = %s FROM o
WHERE i.id = o.id AND o.status = 'sending'
""",
    "UPDATE deliveries_deliveryitem SET lease_until = %s WHERE id {ids} AND status = 'sending'",
)
_DEFER = _ForItems(
    _LOCKED + """
UPDATE deliveries_deliveryitem i SET queued_at = NULL, next_attempt_at = %s FROM o
WHERE i.id = o.id AND o.status IN ('pending', 'failed')
""",
    """
UPDATE deliveries_deliveryitem SET queued_at = NULL, next_attempt_at = %s
WHERE id {ids} AND status IN ('pending', 'failed')
""",
)
_PUT_BACK = _ForItems(
    _LOCKED + """
UPDATE deliveries_deliveryitem i
SET status = %s, attempts = i.attempts - 1, lease_until = NULL, queued_at = NULL,
    next_attempt_at = %s
FROM o WHERE i.id = o.id AND o.status = 'sending'
""",
    """
UPDATE deliveries_deliveryitem
SET status = %s, attempts = attempts - 1, lease_until = NULL, queued_at = NULL,
    next_attempt_at = %s
WHERE id {ids} AND status = 'sending'
""",
)
_MARK_QUEUED = _ForItems(
    _LOCKED + """
UPDATE deliveries_deliveryitem i SET queued_at = %s FROM o WHERE i.id = o.id
""",
    "UPDATE deliveries_deliveryitem SET queued_at = %s WHERE id {ids}",
)
_ATTEMPT_COLUMNS = """
    delivery_id, item_id, referral_id, number, test, started_at, method, url, request_headers,
    request_body, status_code, response_headers, response_body, latency_ms, error_class,
    outcome, reason
"""
_ATTEMPT_VALUES = "%s, %s, %s, %s, FALSE, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
_UPDATE_ITEM = """
UPDATE deliveries_deliveryitem
SET lease_until = NULL, reason = %s, status = %s, delivered_at = COALESCE(%s, delivered_at),
    next_attempt_at = %s
WHERE id = %s
"""
# An attempt is written only while its item is there: an item deleted meanwhile (its referral
# erased while the request was in flight, ``privacy.removal``) gets no attempt, which would
# keep the erased person's body. On PostgreSQL the item's UPDATE comes first and the attempt
# is inserted from what it returns, in one statement, one round trip: the UPDATE waits for an
# erasure holding the item's lock and, once it commits, finds no row and so inserts nothing.
# (Typed: a parameter in a SELECT list takes no type from the column it goes into.)
_RECORD_PG = f"""
WITH item AS ({_UPDATE_ITEM} RETURNING id)
INSERT INTO deliveries_attempt ({_ATTEMPT_COLUMNS})
SELECT %s::bigint, item.id, %s::bigint, %s::integer, FALSE, %s::timestamptz, %s, %s, %s::jsonb,
       %s, %s::integer, %s::jsonb, %s, %s::double precision, %s, %s, %s
FROM item
"""  # noqa: S608 (constants only)
# SQLite (one writer at a time): the item first, then its attempt if the item is there.
_INSERT_ATTEMPT_IF_ITEM = f"""
INSERT INTO deliveries_attempt ({_ATTEMPT_COLUMNS})
SELECT {_ATTEMPT_VALUES} WHERE EXISTS (SELECT 1 FROM deliveries_deliveryitem WHERE id = %s)
"""  # noqa: S608 (constants only)


def items_open(ids: Sequence[int]) -> list[OpenItem]:
    return [
        OpenItem(item_id, delivery_id, status, _aware(due), _aware(updated), bool(live),
                 _aware(last_ok), _aware(failing))
        for item_id, delivery_id, status, due, updated, live, last_ok, failing
        in _OPEN_ITEMS.execute(ids)
    ]


def items_claim_and_read(
    delivery_id: int, ids: Sequence[int], *, lease: dt.datetime, now: dt.datetime,
    lookups: tuple[str, ...],
) -> Claim:  # fmt: skip
    """Claim those of ``ids`` that are ``delivery_id``'s, open and due, while the delivery is
    active and not paused (from here on no other worker sends them until the lease ends or
    this worker is known dead: ``deliveries.liveness``), and
    read their referrals as the values of ``lookups``. One statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        return _claim_and_read_apart(delivery_id, ids, lease=lease, now=now, lookups=lookups)
    sql, params, compiler, converters = _referral_statement(lookups, claimed=True)
    statement = _CLAIM_AND_READ_PG.format(values=sql)
    with prepared_cursor() as cursor:
        claim_params = [list(ids), _db_time(lease), worker_tag(), delivery_id, _db_time(now)]
        cursor.execute(statement, [*claim_params, *params])
        rows = cursor.fetchall()
    if not rows:
        return Claim([], None, {})
    values = [row[_CLAIMED_COLUMNS:] for row in rows]
    if converters:
        values = compiler.apply_converters(values, converters)
    by_referral = {
        pk: tuple(rest) for pk, *rest in values if pk is not None  # None: referral gone
    }
    return _claim(rows, by_referral)


def _claim(rows, by_referral: dict[int, tuple]) -> Claim:
    first = rows[0]
    live = DeliveryLive(_aware(first[6]), _aware(first[7]), _aware(first[8]))
    items = sorted(  # oldest first: RETURNING comes in no set order
        ClaimedItem(row[0], row[1], row[2], _aware(row[3]), row[4], _aware(row[5]))
        for row in rows
    )
    return Claim(items, live, by_referral)


def _claim_and_read_apart(delivery_id, ids, *, lease, now, lookups) -> Claim:
    """SQLite: the claim, then the referrals (its RETURNING cannot read the joined tables, so
    their columns are read first; a write lock is taken by the claim, not before it)."""
    before = {
        item.id: item for item in items_open(ids)
        if item.delivery_id == delivery_id and item.delivery_open
    }  # fmt: skip
    if not before:
        return Claim([], None, {})
    claimed = execute_for_ids(_CLAIM_OF_DELIVERY_APART, list(before),
                              before=[_db_time(lease), worker_tag()],
                              after=[delivery_id, _db_time(now)])  # fmt: skip
    if not claimed:
        return Claim([], None, {})
    anyone = next(iter(before.values()))
    rows = [
        (pk, referral_id, attempts, created, before[pk].status, before[pk].next_attempt_at,
         anyone.delivery_updated_at, anyone.last_success_at, anyone.failing_since)
        for pk, referral_id, attempts, created in claimed
    ]  # fmt: skip
    return _claim(rows, referral_values(lookups, [row[1] for row in rows]))


def items_extend_lease(ids: Sequence[int], *, lease: dt.datetime) -> None:
    """A longer lease for claimed items (their delivery's timeouts grew meanwhile)."""
    _EXTEND_LEASE.execute(ids, before=[_db_time(lease)], returns=False)


def items_defer(ids: Sequence[int], *, due: dt.datetime) -> None:
    """Leave open items alone, due again at ``due`` (the tick sends them)."""
    _DEFER.execute(ids, before=[_db_time(due)], returns=False)


def items_mark_queued(ids: Sequence[int], *, at: dt.datetime) -> None:
    """Say that the tick queued ``ids`` at ``at`` (locking them in the claims' order)."""
    _MARK_QUEUED.execute(ids, before=[_db_time(at)], returns=False)


def items_update_in_id_order(items: QuerySet, **values) -> int:
    """``items.update(**values)`` (a queryset of items), its rows locked in id order first
    on PostgreSQL, as every item statement here locks them: an UPDATE locks rows in the order
    its plan finds them, and with a claim of the same rows in another order it deadlocks (a
    resume, the tick's reset of orphans and of a dead worker's messages touch many)."""
    if connection.vendor != "postgresql":
        return items.update(**values)
    table = items.model._meta.db_table
    chosen, params = items.order_by("pk").values("pk").query.sql_with_params()
    fields = [items.model._meta.get_field(name) for name in values]
    assignments = ", ".join(f'"{f.column}" = %s' for f in fields)
    # The lock re-reads each row: one a concurrent statement changed so that it no longer
    # matches is left alone, as a plain UPDATE would leave it.
    # The ORM's own SQL and column names; values are parameters.
    statement = (
        f'WITH o (id) AS MATERIALIZED ({chosen} FOR UPDATE OF "{table}") '  # noqa: S608
        f'UPDATE "{table}" i SET {assignments} FROM o WHERE i.id = o.id'
    )
    prepared = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, *prepared])
        return cursor.rowcount


def items_put_back(ids: Sequence[int], *, status: str, due: dt.datetime) -> None:
    """Undo the claims of items that got no request: ``status`` as they were, due at ``due``."""
    _PUT_BACK.execute(ids, before=[status, _db_time(due)], returns=False)


def items_record(records: Iterable[ItemRecord]) -> None:
    """Write each attempt and its item's new state; together, or not at all; nothing for an
    item that is gone (erased meanwhile)."""
    records = list(records)
    if not records:
        return
    if len(records) == 1 and connection.vendor == "postgresql":
        # One statement is atomic by itself: no BEGIN and COMMIT round trips.
        with prepared_cursor() as cursor:
            cursor.execute(_RECORD_PG, _record_row_pg(records[0]))
        return
    with transaction.atomic(), prepared_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.executemany(_RECORD_PG, [_record_row_pg(r) for r in records])
        else:
            cursor.executemany(_UPDATE_ITEM, [_item_row(r) for r in records])
            cursor.executemany(_INSERT_ATTEMPT_IF_ITEM,
                               [[*_attempt_row(r), r.item_id] for r in records])  # fmt: skip


def _record_row_pg(record: ItemRecord) -> list:
    """``_RECORD_PG``'s parameters: the item's, then the attempt's but its item id (the row
    the UPDATE returned gives it)."""
    attempt = _attempt_row(record)
    return [*_item_row(record), attempt[0], *attempt[2:]]


def _attempt_row(record: ItemRecord) -> list:
    return [
        record.delivery_id, record.item_id, record.referral_id, record.number,
        _db_time(record.started_at), record.method, record.url,
        json.dumps(record.request_headers), record.request_body, record.status_code,
        json.dumps(record.response_headers), record.response_body, record.latency_ms,
        record.error_class, record.outcome, record.attempt_reason,
    ]  # fmt: skip


def _item_row(record: ItemRecord) -> list:
    return [record.item_reason, record.item_status, _db_time(record.delivered_at),
            _db_time(record.next_attempt_at), record.item_id]  # fmt: skip


def referral_values(lookups: tuple[str, ...], ids: Sequence[int]) -> dict[int, tuple]:
    """The referrals ``ids`` as the values of ``lookups`` (as ``values_list`` gives them), by
    a statement compiled once per lookups and thread: compiling a values_list of thirty
    lookups costs more than the rest of a send together."""
    sql, params, compiler, converters = _referral_statement(lookups)
    param = list(ids) if connection.vendor == "postgresql" else json.dumps(list(ids))
    with connection.cursor() as cursor:
        cursor.execute(sql, [param if p is None else p for p in params])
        rows = cursor.fetchall()
    if converters:
        rows = compiler.apply_converters(rows, converters)
    return {pk: tuple(values) for pk, *values in rows}


_compiled_statements = threading.local()


def _referral_statement(lookups: tuple[str, ...], *, claimed: bool = False):
    """The SELECT of the referrals' ``lookups``, compiled once per thread: of the ids given as
    one parameter (an array, a JSON list: one statement for any number), or (``claimed``) of
    those the claim's ``claimed`` CTE returned."""
    cache = getattr(_compiled_statements, "by_lookups", None)
    if cache is None or getattr(_compiled_statements, "connection", None) is not connection:
        cache = _compiled_statements.by_lookups = {}
        _compiled_statements.connection = connection
    key = (lookups, claimed)
    if key not in cache:
        if claimed:
            only = RawSQL("SELECT referral_id FROM claimed", [])
        else:
            ids = (
                "SELECT unnest(%s::bigint[])" if connection.vendor == "postgresql"
                else "SELECT value FROM json_each(%s)"
            )  # fmt: skip
            only = RawSQL(ids, [None])  # noqa: S611 (a constant; the ids go as a parameter)
        # No ORDER BY (the model's default ordering would sort every read for nothing).
        query = Referral.objects.filter(pk__in=only).order_by().values_list("pk", *lookups)
        compiler = query.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
        cache[key] = (sql, list(params), compiler, compiler.get_converters(fields))
    return cache[key]


def _db_time(value: dt.datetime | None):
    return connection.ops.adapt_datetimefield_value(value)


def _aware(value):
    """SQLite hands back naive UTC times (PostgreSQL aware ones)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
