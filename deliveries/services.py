"""Writes and actions on deliveries, shared by the admin, the API and the tasks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from customfields.services import custom_fields_lock
from deliveries.channels import channel_for, delivery_errors
from deliveries.channels.base import PinOffer
from deliveries.dispatch import delivery_schedule_reset
from deliveries.file_runs import batch_redeliver
from deliveries.ledger import ledger_backfill
from deliveries.models import Batch, Delivery, WorkerHeartbeat
from deliveries.pausing import delivery_resume
from deliveries.replays import replay_range
from deliveries.signing import signing_secret_generate


class DeliveryInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@transaction.atomic
def delivery_save(delivery: Delivery, *, campaigns=None) -> Delivery:
    """Validate and save ``delivery`` (and its campaign scope); nothing is saved on error."""
    if delivery.client_id:  # its columns name custom fields: none renamed or deleted meanwhile
        custom_fields_lock(delivery.client_id)
    errors = delivery_errors(delivery, campaigns=campaigns)
    if errors:
        raise DeliveryInvalid(errors)
    channel_for(delivery.kind).before_save(delivery)
    schedule_changed = _schedule_changed(delivery)
    owes_more = _owes_more(delivery, campaigns)
    delivery.save()
    if campaigns is not None:
        delivery.campaigns.set([] if delivery.all_campaigns else campaigns)
    if schedule_changed:
        delivery_schedule_reset(delivery)
    if owes_more:
        # In the save's transaction, one statement: the delivery and what it owes commit
        # together (no window in which it is saved but owes nothing, no task to lose), and
        # a failure leaves neither. Its row is locked first: see ledger_backfill.
        list(Delivery.objects.select_for_update().filter(pk=delivery.pk).values_list("pk"))
        ledger_backfill(delivery)
        _backfill_settle_after_commit(delivery.pk)
    return delivery


def _backfill_settle_after_commit(delivery_id: int) -> None:
    """An ingestion running beside the save can neither see the delivery (uncommitted) nor
    be seen by the backfill (uncommitted): a second pass once it has ended owes its
    referrals too (``ledger_backfill_settle``)."""
    if connection.vendor != "postgresql":
        return
    from deliveries.tasks import settle_backfill

    def enqueue() -> None:
        settle_backfill.delay(delivery_id, timezone.now().isoformat())

    transaction.on_commit(enqueue, robust=True)


def _owes_more(delivery: Delivery, campaigns) -> bool:
    """Whether the save may make the delivery owe referrals already stored: it is new, its
    start moves earlier, or its scope widens (all campaigns, or a campaign added)."""
    if delivery.pk is None:
        return True
    stored = Delivery.objects.filter(pk=delivery.pk).values("starts_at", "all_campaigns").first()
    if stored is None:
        return True
    if delivery.starts_at < stored["starts_at"]:
        return True
    if delivery.all_campaigns:
        return not stored["all_campaigns"]
    if campaigns is None or stored["all_campaigns"]:
        return False
    had = set(delivery.campaigns.values_list("pk", flat=True))
    return bool({campaign.pk for campaign in campaigns} - had)


_SCHEDULE_FIELDS = (
    "schedule_kind", "schedule_every_minutes", "schedule_minute", "schedule_time",
    "schedule_weekday", "schedule_cron",
)  # fmt: skip


def _schedule_changed(delivery: Delivery) -> bool:
    if delivery.pk is None or delivery.next_run_at is None:
        return True
    stored = Delivery.objects.filter(pk=delivery.pk).values(*_SCHEDULE_FIELDS, "client_id").first()
    if stored is None:
        return True
    return any(stored[name] != getattr(delivery, name) for name in _SCHEDULE_FIELDS) or (
        stored["client_id"] != delivery.client_id
    )


def delivery_rotate_signing_secret(delivery: Delivery, *, overlap_hours: int = 24) -> None:
    """A new signing secret; the old one keeps signing too for ``overlap_hours``, so the
    receiver can switch over without refusing a single request."""
    delivery.previous_signing_secret = delivery.signing_secret
    delivery.previous_secret_until = timezone.now() + dt.timedelta(hours=overlap_hours)
    delivery.signing_secret = signing_secret_generate()
    delivery.save(
        update_fields=["previous_signing_secret", "previous_secret_until", "signing_secret"]
    )


def delivery_resume_now(delivery: Delivery) -> None:
    """Unpause and send what is owed now: a file run at once (real-time items are made due
    by the resume itself)."""
    delivery_resume(delivery)
    if channel_for(delivery.kind).batch and delivery.active:
        delivery_send_now(delivery)


@dataclass(frozen=True)
class Redelivery:
    referrals: int  # sent again (real time) or in the redelivery batch (files)
    batch: Batch | None  # files: the batch that carries them


def delivery_redeliver_range(
    delivery: Delivery, *, start: dt.datetime, end: dt.datetime, requested_by: str
) -> Redelivery:
    """Send again what was stored from ``start`` to ``end`` (exclusive): real time, each
    referral's item again; files, one redelivery batch, sent now unless paused."""
    if not channel_for(delivery.kind).batch:
        return Redelivery(replay_range(delivery, start, end), None)
    batch = batch_redeliver(delivery, start, end, requested_by=requested_by)
    if delivery.active and not delivery.paused:
        delivery_send_now(delivery)
    return Redelivery(batch.rows, batch)


def delivery_send_now(delivery: Delivery) -> None:
    """Queue a run now, ignoring back-off; the claim keeps it from overlapping another."""
    from deliveries.tasks import run_file_delivery

    transaction.on_commit(lambda: run_file_delivery.delay(delivery.pk, forced=True))


def delivery_test_connection(delivery: Delivery) -> str:
    """What the "test" button runs: the channel's test (files: log in as a run would and
    list the folder; real time: send a test referral as live delivery would)."""
    return channel_for(delivery.kind).test_connection(delivery)


def delivery_fetch_pin(delivery: Delivery) -> PinOffer:
    """The key or certificate the server presents now, for the account manager to confirm
    and pin in the channel's pin field."""
    return channel_for(delivery.kind).fetch_pin(delivery)


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"beat_at": timezone.now()}
    )
    return heartbeat
