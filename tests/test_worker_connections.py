"""A worker's database connections between tasks: broken or too old ones dropped, as Django
does around a request, and the others health-checked before their next use at most once a
second (a real-time send is two statements; a check before every task was a third)."""

from __future__ import annotations

import pytest
from django.db import connection

from rokt_platform.celery import _recycle_database_connections

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as in a worker


@pytest.fixture()
def checks(monkeypatch) -> list[bool]:
    """Each health check of the default connection, as it happens (``CONN_HEALTH_CHECKS`` on,
    as the settings have it on PostgreSQL)."""
    connection.ensure_connection()
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    monkeypatch.setattr(connection, "health_check_enabled", True)
    monkeypatch.setattr(connection, "_checked_at", float("-inf"), raising=False)  # never
    seen: list[bool] = []
    is_usable = connection.is_usable

    def counted() -> bool:
        seen.append(is_usable())
        return seen[-1]

    monkeypatch.setattr(connection, "is_usable", counted)
    return seen


def _task() -> None:
    _recycle_database_connections(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_tasks_in_a_row_check_the_connection_once_a_second(checks):
    _task()
    assert checks == [True]  # first task: checked before use
    _task()
    _task()
    assert checks == [True]  # checked under a second ago: not again
    connection._checked_at -= 2
    _task()
    assert checks == [True, True]  # after a pause in the traffic: checked again


def test_a_task_that_hit_a_database_error_gets_its_connection_checked_at_once(checks):
    _task()
    connection.errors_occurred = True
    _task()
    assert checks == [True, True]
    assert not connection.errors_occurred

