"""Exactly one beat: a second beat process refuses to start.

Two beats send every scheduled task twice (PITFALLS.md), so beat takes a lock held for its
whole life and released by the operating system or the database when the process dies, never
by a timer that could expire while beat still runs:

- on PostgreSQL, a session-level advisory lock on a connection kept open by beat, so beats on
  different machines exclude each other;
- on SQLite (one machine by definition), an exclusive ``flock`` on a file beside the database.
"""

from __future__ import annotations

import fcntl
import logging
import sys

from django.conf import settings

logger = logging.getLogger(__name__)

# Any fixed 64-bit number; it only has to be the same for every beat of one deployment.
ADVISORY_LOCK_KEY = 7_312_004_117
_held: list[object] = []  # keeps the lock's connection or file alive for the process's life


class BeatAlreadyRunning(RuntimeError):
    pass


def acquire_beat_lock() -> None:
    try:
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            _held.append(_postgres_lock())
        else:
            _held.append(_file_lock())
    except BeatAlreadyRunning as exc:
        logger.critical("%s", exc)
        sys.exit(f"beat refused to start: {exc}")


def _postgres_lock() -> object:
    import psycopg

    db = settings.DATABASES["default"]
    conn = psycopg.connect(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        autocommit=True,
    )
    (acquired,) = conn.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY]).fetchone()
    if not acquired:
        conn.close()
        raise BeatAlreadyRunning("another beat holds the PostgreSQL advisory lock")
    return conn


def _file_lock() -> object:
    path = settings.VAR_DIR / "beat.lock"
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BeatAlreadyRunning(f"another beat holds {path}") from None
    return handle
