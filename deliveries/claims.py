"""A run's claim on its delivery: no two runs of one delivery at once, on any machine
(``rokt_platform.claims``: released by the database or the operating system when the process
dies)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection

from rokt_platform.claims import claim

# Advisory locks take two 32-bit keys: this namespace, and the delivery's id.
_NAMESPACE = 0x524F4B54  # "ROKT"


@contextmanager
def delivery_claim(delivery_id: int) -> Iterator[bool]:
    """Yield True if this process now holds ``delivery_id``'s claim, False if another does."""
    with claim(_NAMESPACE, delivery_id, f"delivery-{delivery_id}") as held:
        yield held


def delivery_claims_await(delivery_ids: Iterable[int]) -> None:
    """Hold the claims of ``delivery_ids`` until the current transaction ends, waiting for any
    run that holds one to finish (PostgreSQL: transaction-level advisory locks, in id order,
    so two callers never wait for each other). For a change a file run must not overlap, such
    as taking a referral out of a batch that is being written and uploaded; take them before
    any row lock, since a run in progress may be waiting for one. On SQLite: nothing (one
    machine; its writers take turns)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for delivery_id in sorted(set(delivery_ids)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, delivery_id])
