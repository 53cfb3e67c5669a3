"""Cursors whose statements PostgreSQL prepares once per connection: for the few statements a
real-time send or a one-referral ingestion runs hundreds of times a second.

Django binds parameters on the client and never prepares (``prepare_threshold`` off, for
connection poolers), so PostgreSQL plans every statement anew: for the send's claim (an
UPDATE joined to its delivery, the referrals read in the same statement) planning took four
times as long as running it. A prepared statement is planned once per connection; its
parameters are bound by the server.

``DATABASE_PREPARED_STATEMENTS`` off (behind a pooler in transaction mode, which cannot keep
a session's prepared statements) gives Django's usual cursor. SQLite always does.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import connection

from rokt_platform.django_internals import cursor_of_our_own

# Older SQLite builds allow 999 parameters in one statement.
_SQLITE_CHUNK = 900


def prepared_cursor():
    """A cursor like ``connection.cursor()`` (Django's error wrapping, execute wrappers and
    query logging included) whose ``execute`` prepares its statement on PostgreSQL."""
    if connection.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return connection.cursor()
    return cursor_of_our_own(connection, _preparing_cursor)


def _preparing_cursor(raw):
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None), which ``prepare=True`` cannot override.
        # Its own cursors bind on the client and never prepare, whatever the threshold: a
        # threshold no statement reaches leaves ours the only ones prepared.
        raw.prepare_threshold = _NEVER
    return _preparing_cursor_class()(raw)


def execute_for_ids(
    sql: str, ids: Sequence, *, before=(), after=(), returns: bool = True
) -> list[tuple]:
    """Run ``sql`` for ``ids`` (its ``{ids}`` becomes ``= ANY(%s)`` over one array parameter
    on PostgreSQL, prepared: one statement for any number; ``IN (%s, ...)`` by chunks of
    parameters on SQLite), ``before`` and ``after`` its other parameters; the rows, unless
    ``returns`` is false."""
    if not ids:
        return []
    rows: list[tuple] = []
    with prepared_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.format(ids="= ANY(%s)"), [*before, list(ids), *after])
            return cursor.fetchall() if returns else []
        for start in range(0, len(ids), _SQLITE_CHUNK):
            chunk = list(ids[start : start + _SQLITE_CHUNK])
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql.format(ids=f"IN ({placeholders})"), [*before, *chunk, *after])
            if returns:
                rows += cursor.fetchall()
    return rows


_NEVER = 2**62


class _Shown:
    """The statement as Django's ``last_executed_query`` reads it (placeholders, no values)."""

    __slots__ = ("query",)

    def __init__(self, query: bytes) -> None:
        self.query = query

_class = []


def _preparing_cursor_class():
    if not _class:
        import psycopg

        class PreparingCursor(psycopg.Cursor):
            """Server-side binding, every statement prepared (psycopg keeps the prepared
            statements of each connection, the least used dropped past ``prepared_max``)."""

            def execute(self, query, params=None, *, prepare=None, binary=None):
                super().execute(query, params, prepare=True, binary=binary)
                # What Django's query log shows (it reads this of client-binding cursors).
                self._query = _Shown(query.encode())
                return self

        _class.append(PreparingCursor)
    return _class[0]
