from __future__ import annotations

from django.db.models import Max
from django.utils import timezone

from deliveries.models import WorkerHeartbeat


def worker_heartbeat_age_seconds() -> float | None:
    """Seconds since any worker last beat, or ``None`` if none ever has."""
    latest = WorkerHeartbeat.objects.aggregate(latest=Max("beat_at"))["latest"]
    return None if latest is None else round((timezone.now() - latest).total_seconds(), 1)


def deliveries_failing_for(user) -> list:
    """Active deliveries the user may see that are paused or failing, worst first."""
    from django.db.models import Q

    from deliveries.models import Delivery
    from referrals.tenancy import scope_to_user

    failing = Delivery.objects.filter(active=True).filter(
        Q(failing_since__isnull=False) | Q(paused_at__isnull=False)
    )
    return list(
        scope_to_user(failing, user, client_path="client")
        .select_related("client")
        .order_by("failing_since")[:20]
    )
