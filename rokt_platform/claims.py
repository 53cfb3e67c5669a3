"""A process's claim on a named thing: held by one process at a time, on any machine.

On PostgreSQL a session-level advisory lock on the process's own connection: the database
releases it the moment the process or its connection dies (a SIGKILLed worker leaves no stale
claim behind, and no timer can expire under a slow run). On SQLite, one machine by
definition, an exclusive ``flock`` on a file, released by the operating system likewise.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection


@contextmanager
def claim(namespace: int, key: int, name: str) -> Iterator[bool]:
    """Yield True if this process now holds the claim (``namespace``, ``key``) (advisory
    locks take two 32-bit keys), False if another does; ``name`` names its SQLite file."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
            (held,) = cursor.fetchone()
        try:
            yield held
        finally:
            if held and connection.connection is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
        return
    directory = settings.VAR_DIR / "claims"
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
