"""Writes and actions on deliveries, shared by the admin, the API and the tasks."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from customfields.services import custom_fields_lock
from deliveries.dispatch import delivery_schedule_reset
from deliveries.file_runs import delivery_target, transport_for
from deliveries.models import Delivery, WorkerHeartbeat
from deliveries.signing import signing_secret_generate
from deliveries.transports.base import TransportError
from deliveries.validation import delivery_errors


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
    if delivery.kind == Delivery.Kind.API and not delivery.signing_secret:
        delivery.signing_secret = signing_secret_generate()
    schedule_changed = _schedule_changed(delivery)
    delivery.save()
    if campaigns is not None:
        delivery.campaigns.set([] if delivery.all_campaigns else campaigns)
    if schedule_changed:
        delivery_schedule_reset(delivery)
    return delivery


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


def delivery_send_now(delivery: Delivery) -> None:
    """Queue a run now, ignoring back-off; the claim keeps it from overlapping another."""
    from deliveries.tasks import run_file_delivery

    transaction.on_commit(lambda: run_file_delivery.delay(delivery.pk, forced=True))


def delivery_test_connection(delivery: Delivery) -> str:
    """Files: log in as a run would (same checks, same pins) and list the remote directory.
    Real-time: send a test referral as live delivery would (same rules, same SSRF guard)."""
    if delivery.kind == Delivery.Kind.API:
        from deliveries.api_runs import api_test_send

        attempt = api_test_send(delivery)
        answer = attempt.status_code or attempt.error_class
        latency = attempt.latency_ms or 0
        text = f"Test referral sent: {answer} in {latency:.0f} ms, {attempt.outcome}"
        if attempt.outcome != "delivered":
            raise ConnectionTestFailed(f"{text}: {attempt.reason}")
        return text
    try:
        with transport_for(delivery).connect(delivery_target(delivery)) as session:
            names = session.listdir()
    except TransportError as exc:
        raise ConnectionTestFailed(str(exc)) from None
    shown = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
    return f"Connected and logged in; the remote folder holds {len(names)} entries: {shown or '-'}"


class ConnectionTestFailed(RuntimeError):
    pass


def delivery_fetch_host_key(delivery: Delivery):
    """The key the SFTP server presents now, for the account manager to confirm and pin."""
    from deliveries.transports import sftp

    target = delivery_target(delivery)
    try:
        return sftp.fetch_host_key(target.host, target.port)
    except TransportError as exc:
        raise ConnectionTestFailed(str(exc)) from None


def delivery_fetch_certificate(delivery: Delivery):
    from deliveries.transports import ftps

    target = delivery_target(delivery)
    try:
        return ftps.fetch_certificate(target.host, target.port, target.tls_mode)
    except TransportError as exc:
        raise ConnectionTestFailed(str(exc)) from None


def worker_heartbeat_record(*, hostname: str) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"beat_at": timezone.now()}
    )
    return heartbeat
