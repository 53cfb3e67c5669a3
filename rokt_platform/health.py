"""``/healthz``: does the database answer, does the broker answer, is a worker alive."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deliveries.selectors import worker_heartbeat_age_seconds
from rokt_platform.celery import app


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
        # Informational: a worker may be legitimately absent (web-only machine).
        "worker_heartbeat_age_seconds": worker_heartbeat_age_seconds() if database else None,
    }
    return JsonResponse(body, status=200 if database and broker else 503)
