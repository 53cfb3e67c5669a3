"""A run's claim on its delivery: no two runs of one delivery at once, on any machine.

On PostgreSQL a session-level advisory lock on the worker's own connection: the database
releases it the moment the process or its connection dies (a SIGKILLed worker leaves no stale
claim behind, and no timer can expire under a slow upload). On SQLite, one machine by
definition, an exclusive ``flock`` on a file, released by the operating system likewise.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

# Advisory locks take two 32-bit keys: this namespace, and the delivery's id.
_NAMESPACE = 0x524F4B54  # "ROKT"


@contextmanager
def delivery_claim(delivery_id: int) -> Iterator[bool]:
    """Yield True if this process now holds ``delivery_id``'s claim, False if another does."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_NAMESPACE, delivery_id])
            (held,) = cursor.fetchone()
        try:
            yield held
        finally:
            if held and connection.connection is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, delivery_id])
        return
    directory = settings.VAR_DIR / "claims"
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"delivery-{delivery_id}.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
