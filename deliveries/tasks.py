from __future__ import annotations

import datetime as dt

from celery import shared_task

from deliveries.alerts import deliveries_warn_overdue
from deliveries.api_dispatch import api_items_queue_due, api_retries_overdue
from deliveries.api_runs import api_item_send, api_items_send
from deliveries.dispatch import file_deliveries_due
from deliveries.file_runs import file_delivery_run
from deliveries.ledger import ledger_backfill_settle
from deliveries.services import worker_heartbeat_record


@shared_task(name="housekeeping.heartbeat", bind=True, ignore_result=True)
def heartbeat(self) -> None:
    """Scheduled by beat every minute; proves a worker consumes the housekeeping queue."""
    worker_heartbeat_record(hostname=self.request.hostname or "unknown")


@shared_task(name="housekeeping.deliveries_tick", ignore_result=True)
def deliveries_tick() -> None:
    """Scheduled by beat: queue the file runs that are due or owed a retry; warn."""
    for delivery_id in file_deliveries_due():
        run_file_delivery.delay(delivery_id)
    deliveries_warn_overdue()


# acks_late: a run lost with its worker is sent again; a second run is harmless (the claim
# and the frozen batches make it resend, never rebuild), and the tick would queue one anyway.
@shared_task(name="deliveries.files.run", ignore_result=True, acks_late=True)
def run_file_delivery(delivery_id: int, forced: bool = False) -> None:
    file_delivery_run(delivery_id, forced=forced)


# delivery_id: queued with every message now; messages queued before it was carried have
# none, and the send looks the items' deliveries up.
@shared_task(name="deliveries.api.send", ignore_result=True)
def send_api_item(item_id: int, delivery_id: int | None = None) -> None:
    api_item_send(item_id, delivery_id)


@shared_task(name="deliveries.api.send_many", ignore_result=True)
def send_api_items(item_ids: list[int], delivery_id: int | None = None) -> None:
    api_items_send(item_ids, delivery_id)


@shared_task(name="housekeeping.api_deliveries_tick", ignore_result=True)
def api_deliveries_tick() -> None:
    """Scheduled by beat every few seconds: queue due retries and lost items; watchdog."""
    api_items_queue_due()
    api_retries_overdue()


@shared_task(name="housekeeping.settle_backfill", ignore_result=True, acks_late=True)
def settle_backfill(delivery_id: int, saved_at: str) -> None:
    """Queued when a save made a delivery owe stored referrals; idempotent (ON CONFLICT)."""
    ledger_backfill_settle(delivery_id, saved_at=dt.datetime.fromisoformat(saved_at))
