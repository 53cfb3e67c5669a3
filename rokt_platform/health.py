"""``/healthz``: does the database answer, does the broker answer, and what the apps add (is a
worker alive).

The apps register what they add from their ``AppConfig.ready()``: this module imports none of
them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from rokt_platform.celery import app

# Name in the answer -> what reads it from the database (null while the database is down).
_DETAILS: dict[str, Callable[[], object]] = {}


def health_detail_register(name: str, read: Callable[[], object]) -> None:
    _DETAILS[name] = read


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def _broker_ok() -> bool:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_BROKER_TIMEOUT)
        return True
    except Exception:
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    broker = _broker_ok()
    body = {
        "database": "ok" if database else "down",
        "broker": "ok" if broker else "down",
        **{name: read() if database else None for name, read in _DETAILS.items()},
    }
    return JsonResponse(body, status=200 if database and broker else 503)
