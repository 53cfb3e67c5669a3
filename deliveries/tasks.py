from __future__ import annotations

from celery import shared_task

from deliveries.services import worker_heartbeat_record


@shared_task(name="housekeeping.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> None:
    """Scheduled by beat every minute; proves a worker consumes the housekeeping queue."""
    worker_heartbeat_record(hostname=self.request.hostname or "unknown")
