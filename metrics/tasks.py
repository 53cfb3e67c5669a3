from celery import shared_task

from metrics.backlog import backlog_snapshot_take


@shared_task(name="housekeeping.metrics_backlog", ignore_result=True)
def metrics_backlog() -> None:
    """Scheduled by beat every METRICS_BACKLOG_SECONDS: recount what each delivery owes."""
    backlog_snapshot_take()
