"""What the platform relies on in Django beyond its documented API, in one place.

Both uses save round trips on hot paths:

- ``cursor_of_our_own``: a cursor of another class, made the way ``connection.cursor()``
  makes Django's own (``close_if_health_check_failed``, ``ensure_connection``,
  ``wrap_database_errors``, ``_prepare_cursor``), so that it keeps Django's error wrapping,
  execute wrappers and query log (``rokt_platform.prepared``'s statements PostgreSQL
  prepares).
- ``connections_recycle``: a worker's connections recycled as around a request, but
  health-checked at most once in a while: ``errors_occurred`` tells that a statement failed
  since the last check, ``health_check_done`` marks a connection as checked
  (``rokt_platform.celery``).

``tests/test_library_internals.py`` fails, naming what moved, if an upgrade of Django changes
any of it. (``Model._state`` is documented API, used where needed.)
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connections

# When each connection was last health-checked, kept on the connection (``time.monotonic``).
_CHECKED_AT = "_checked_at"


def cursor_of_our_own(connection, make_cursor: Callable):
    """A Django cursor over ``make_cursor(raw DB-API connection)``, wrapped as
    ``connection.cursor()`` wraps Django's own."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(make_cursor(connection.connection))


def connections_recycle(now: float, check_every: float) -> None:
    """Drop this thread's connections past ``CONN_MAX_AGE`` or broken, as Django does around
    a request; health-check each of the others before its next use, unless it was checked
    less than ``check_every`` seconds before ``now`` with no error since."""
    for connection in connections.all(initialized_only=True):
        checked_lately = (
            not connection.errors_occurred
            and now - getattr(connection, _CHECKED_AT, float("-inf")) < check_every
        )
        connection.close_if_unusable_or_obsolete()
        if connection.connection is None:
            continue
        if checked_lately:
            connection.health_check_done = True
        else:  # checked on its next use
            setattr(connection, _CHECKED_AT, now)
