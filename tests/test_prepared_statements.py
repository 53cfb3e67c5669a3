"""The hottest statements are prepared once per connection on PostgreSQL, and only they:
Django's own cursors stay unprepared (a pooler in transaction mode cannot keep a session's
prepared statements: DATABASE_PREPARED_STATEMENTS=false turns ours off too)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rokt_platform.prepared import prepared_cursor

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
STATEMENT = "SELECT %s::int + 1 AS prepared_probe"


def _prepared_here() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def test_a_statement_is_prepared_once_and_logged_like_any_other():
    with CaptureQueriesContext(connection) as queries:
        for value in range(3):
            with prepared_cursor() as cursor:
                cursor.execute(STATEMENT, [value])
                assert cursor.fetchone() == (value + 1,)
    assert [s for s in _prepared_here() if "prepared_probe" in s] == [
        "SELECT $1::int + 1 AS prepared_probe"
    ]
    assert [q["sql"] for q in queries] == [STATEMENT] * 3
    with connection.cursor() as cursor:  # Django's own cursors: never prepared
        for _ in range(10):
            cursor.execute("SELECT 2 AS unprepared_probe")
    assert not [s for s in _prepared_here() if "unprepared_probe" in s]


def test_the_setting_off_prepares_nothing(settings):
    settings.DATABASE_PREPARED_STATEMENTS = False
    with prepared_cursor() as cursor:
        cursor.execute(STATEMENT.replace("probe", "probe_off"), [1])
    assert not [s for s in _prepared_here() if "probe_off" in s]
