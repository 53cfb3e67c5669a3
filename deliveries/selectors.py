from __future__ import annotations

from django.db.models import Max
from django.utils import timezone

from deliveries.models import WorkerHeartbeat


def worker_heartbeat_age_seconds() -> float | None:
    """Seconds since any worker last beat, or ``None`` if none ever has."""
    latest = WorkerHeartbeat.objects.aggregate(latest=Max("beat_at"))["latest"]
    return None if latest is None else round((timezone.now() - latest).total_seconds(), 1)
