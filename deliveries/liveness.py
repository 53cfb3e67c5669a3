"""Which workers are alive, as the database sees them: what lets the tick take back at once
what a killed worker held (its claimed items, its budget tokens, the messages it had taken)
instead of waiting for leases and for the minute after which a message counts as lost.

A Celery worker process that sends holds one idle PostgreSQL session of its own for its whole
life, its *anchor*, named after the process (``application_name``: its *tag*,
``rokt-worker <pid> <random>``). The database ends that session the moment the process dies,
SIGKILL included (the kernel closes its socket). So a tag missing from ``pg_stat_activity`` is
proof that its process, and every request it had in flight, is gone; not a guess from a missed
heartbeat: a worker slowed down by load, a long request or a pause keeps its session and its
claims. The tag marks what the worker takes: its claims (``DeliveryItem.claimed_by``) and its
budget tokens (``deliveries.budget``).

Outside a Celery worker (web, shell, a test calling a send) and on SQLite there is no tag:
claims and tokens then end with their lease only. A live worker loses its anchor only when the
database drops the session (a restart, ``pg_terminate_backend``); it opens a new anchor under a
new tag within a second, and what it had claimed under the old one may then be sent again
while its last requests still run (as after any database restart: their attempts could not be
recorded either).
"""

from __future__ import annotations

import os
import secrets
import select
import threading
import time
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections

TAG_PREFIX = "rokt-worker "
# How often a worker looks whether its anchor still stands (a poll of its socket, no query).
_CHECK_EVERY = 1.0

_lock = threading.Lock()
_enabled = False


@dataclass
class _Anchor:
    pid: int
    tag: str
    session: object  # a DatabaseWrapper of its own, never handed to Django's handler
    checked_at: float


_anchor: _Anchor | None = None


def worker_enable(**signal) -> None:
    """This process is a Celery worker: what it claims is marked with its tag (its children,
    forked by a prefork pool, each open an anchor of their own).

    Connected to Celery's ``celeryd_init`` by this app's ``AppConfig.ready()``: a worker sets
    Django up (Celery's Django fix-up, as it loads its task modules) before it sends that
    signal, and before it forks its pool."""
    global _enabled
    _enabled = True


def worker_tag() -> str | None:
    """This worker process's tag, its anchor opened on first use; ``None`` outside a worker
    or off PostgreSQL."""
    anchor = _anchor
    if anchor is not None and anchor.pid == os.getpid():
        if time.monotonic() - anchor.checked_at < _CHECK_EVERY:
            return anchor.tag
    elif not _enabled or connection.vendor != "postgresql":
        return None
    with _lock:
        return _standing_anchor().tag


def live_worker_tags() -> set[str]:
    """The tags of every worker whose anchor stands now (PostgreSQL only)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE application_name LIKE %s", [TAG_PREFIX + "%"],
        )  # fmt: skip
        return {name for (name,) in cursor.fetchall()}


def _standing_anchor() -> _Anchor:
    """The process's anchor, checked (its socket has nothing to say while it stands: an
    idle session is sent nothing but its end), or a new one under a new tag."""
    global _anchor
    anchor = _anchor
    if anchor is not None and anchor.pid == os.getpid():
        if _stands(anchor):
            anchor.checked_at = time.monotonic()
            return anchor
        anchor.session.close()
    session = connections.create_connection(DEFAULT_DB_ALIAS)
    session.inc_thread_sharing()  # used by whichever thread looks, under ``_lock``
    tag = f"{TAG_PREFIX}{os.getpid()} {secrets.token_hex(8)}"
    with session.cursor() as cursor:
        cursor.execute("SELECT set_config('application_name', %s, false)", [tag])
    _anchor = _Anchor(os.getpid(), tag, session, time.monotonic())
    return _anchor


def _stands(anchor: _Anchor) -> bool:
    raw = anchor.session.connection
    if raw is None or raw.closed:
        return False
    readable, _, _ = select.select([raw.fileno()], [], [], 0)
    if not readable:
        return True
    try:  # a notice (a reload's new settings), or the session's end
        with anchor.session.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False
