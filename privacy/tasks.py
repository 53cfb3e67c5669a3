from __future__ import annotations

from celery import shared_task

from privacy.runs import retention_purge


@shared_task(name="housekeeping.retention_purge", ignore_result=True)
def retention_purge_task() -> None:
    retention_purge()
