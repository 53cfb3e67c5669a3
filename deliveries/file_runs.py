"""A file delivery's run: claim, freeze, write, upload, rename, check, mark sent.

Exactly once, whatever crashes: the ledger says what the delivery owes; a run holds the
delivery's claim (a second run at the same moment does nothing), first resends any batch not
yet sent (the same frozen referrals under the same names, so a resent file replaces its own
copy), then freezes what is pending into the next numbered batch in one transaction and sends
that. A batch is marked sent only after every file is in place and its remote size checked; a
worker that dies mid-upload leaves the batch "sending", and the next run resends it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from deliveries.alerts import delivery_failed, delivery_succeeded
from deliveries.channels import channel_for
from deliveries.channels.batch import BatchChannel
from deliveries.claims import delivery_claim
from deliveries.configuration import ConfigurationError, configured, pause_reason
from deliveries.filenames import batch_file_names
from deliveries.filewriter import WrittenFile, batch_write
from deliveries.models import Batch, BatchEntry, Delivery, DeliveryItem
from deliveries.pausing import delivery_pause_unreadable, delivery_stop
from deliveries.secrets import SecretUnreadable
from deliveries.transports.base import TransportError
from referrals.models import Referral

logger = logging.getLogger(__name__)

# Resending a failed batch: fast at first, then backing off to every few hours, with jitter so
# deliveries that failed together (one server down) do not all retry in the same second.
_BACKOFF_MINUTES = [1, 5, 15, 60, 120, 240]
# A batch "sending" longer than this with no run holding the claim was interrupted.
_SENDING_GRACE = dt.timedelta(minutes=2)


@dataclass
class RunResult:
    outcome: str  # busy | inactive | paused | waiting | nothing | sent | failed
    batches: list[Batch] = field(default_factory=list)
    message: str = ""


class RunRefused(ValueError):
    """A run that cannot start (inactive or paused delivery, not a file delivery)."""


def file_delivery_run(delivery_id: int, *, forced: bool = False) -> RunResult:
    """Resend what is unsent, then send what is new. ``forced``: ignore retry back-off."""
    with delivery_claim(delivery_id) as held:
        if not held:
            return RunResult("busy", message="Another run of this delivery is in progress.")
        try:
            delivery = Delivery.objects.select_related("client").get(pk=delivery_id)
        except SecretUnreadable as exc:
            delivery_pause_unreadable(delivery_id, exc)
            return RunResult("failed", message=str(exc))
        if not delivery.active:
            return RunResult("inactive", message="The delivery is inactive.")
        if delivery.paused:
            return RunResult("paused", message=f"The delivery is paused: {delivery.paused_reason}")
        sent: list[Batch] = []
        for batch in _unsent(delivery):
            # A batch still "sending" while this run holds the claim was left by a run that
            # died: it goes again now. Others wait for their back-off unless forced.
            orphaned = batch.status == Batch.Status.SENDING
            due = not batch.next_attempt_at or batch.next_attempt_at <= timezone.now()
            if not (forced or orphaned or due):
                return RunResult("waiting", sent, f"Batch {batch.number} waits for its retry.")
            if not batch_send(delivery, batch):
                return RunResult("failed", [*sent, batch], batch.error)
            sent.append(batch)
        batch = batch_freeze(delivery)
        if batch is None:
            return RunResult("sent" if sent else "nothing", sent)
        ok = batch_send(delivery, batch)
        return RunResult("sent" if ok else "failed", [*sent, batch], "" if ok else batch.error)


def _unsent(delivery: Delivery):
    return list(delivery.batches.exclude(status=Batch.Status.SENT).order_by("number"))


def batch_freeze(delivery: Delivery, *, now: dt.datetime | None = None) -> Batch | None:
    """Move everything the delivery owes into a new numbered batch, in one transaction.

    The owed ledger rows are deleted and their referrals inserted as the batch's entries in
    one statement: rows committed after its snapshot stay owed, for the next batch, so
    nothing is skipped and nothing is taken twice. ``None`` when nothing is owed and the
    delivery does not send empty files.
    """
    owed = DeliveryItem.objects.filter(delivery=delivery, status=DeliveryItem.Status.FILE)
    if not delivery.send_empty and not owed.exists():
        return None
    with transaction.atomic():
        batch = Batch.objects.create(
            delivery=delivery, number=_next_number(delivery), run_at=now or timezone.now()
        )
        rows = _move_owed_into(batch, delivery)
        if rows == 0 and not delivery.send_empty:
            transaction.set_rollback(True)
            return None
        batch.rows = rows
        batch.save(update_fields=["rows"])
    if rows >= _ANALYZE_AFTER_ROWS:
        _analyze(BatchEntry, DeliveryItem)
    return batch


_MOVE = """
WITH moved AS (
    DELETE FROM deliveries_deliveryitem
    WHERE delivery_id = %(delivery)s AND status = 'file'
    RETURNING referral_id
)
INSERT INTO deliveries_batchentry (batch_id, referral_id)
SELECT %(batch)s, referral_id FROM moved
"""


def _move_owed_into(batch: Batch, delivery: Delivery) -> int:
    params = {"delivery": delivery.pk, "batch": batch.pk}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_MOVE, params)
            return cursor.rowcount
        # SQLite has one writer at a time: nothing commits between these two statements.
        cursor.execute(
            "INSERT INTO deliveries_batchentry (batch_id, referral_id) "
            "SELECT %(batch)s, referral_id FROM deliveries_deliveryitem "
            "WHERE delivery_id = %(delivery)s AND status = 'file'", params,
        )  # fmt: skip
        rows = cursor.rowcount
        cursor.execute(
            "DELETE FROM deliveries_deliveryitem WHERE delivery_id = %(delivery)s "
            "AND status = 'file'", params,
        )  # fmt: skip
        if cursor.rowcount != rows:
            raise RuntimeError("the ledger changed while a batch was frozen")
        return rows


# A batch this large changes the tables' statistics enough that the planner, still believing
# the new batch id matches nothing, picks a plan that sorts the batch on disk (seconds per
# million rows) and the next "anything owed?" check scans instead of using its index.
_ANALYZE_AFTER_ROWS = 10_000


def _analyze(*models) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"ANALYZE {model._meta.db_table}")


def batch_redeliver(
    delivery: Delivery, start: dt.datetime, end: dt.datetime, *, requested_by: str = ""
) -> Batch:
    """A new batch of every referral stored in [start, end) that the delivery's scope matches,
    sent again whatever was sent before; named and logged as a redelivery."""
    if end <= start:
        raise ValueError("The end of the range must be after its start.")
    referrals = Referral.objects.filter(
        client=delivery.client, created_at__gte=start, created_at__lt=end
    )
    if not delivery.all_campaigns:
        referrals = referrals.filter(campaign__in=delivery.campaigns.all())
    with transaction.atomic():
        batch = Batch.objects.create(
            delivery=delivery, number=_next_number(delivery), kind=Batch.Kind.REDELIVERY,
            run_at=timezone.now(), range_start=start, range_end=end, requested_by=requested_by,
        )  # fmt: skip
        created = BatchEntry.objects.bulk_create(
            (BatchEntry(batch=batch, referral_id=pk)
             for pk in referrals.values_list("pk", flat=True).iterator(chunk_size=5000)),
            batch_size=5000,
        )  # fmt: skip
        batch.rows = len(created)
        batch.save(update_fields=["rows"])
    if batch.rows >= _ANALYZE_AFTER_ROWS:
        _analyze(BatchEntry)
    return batch


def batch_resend(batch: Batch, *, requested_by: str = "") -> Batch:
    """Queue ``batch`` to go again as it is (same referrals, same names) at the next run."""
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.PENDING, next_attempt_at=None, requested_by=requested_by
    )
    batch.refresh_from_db()
    return batch


def _next_number(delivery: Delivery) -> int:
    # Under the run's claim, or a unique constraint refuses the second of two at once.
    latest = delivery.batches.aggregate(latest=Max("number"))["latest"]
    return (latest or 0) + 1


def batch_send(delivery: Delivery, batch: Batch) -> bool:
    """Write and upload ``batch``; record how it went. True when sent."""
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.SENDING, attempts=batch.attempts + 1, started_at=now,
        finished_at=None, error="", next_attempt_at=now + _SENDING_GRACE,
    )  # fmt: skip
    batch.refresh_from_db()
    settings.DELIVERY_WORK_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=settings.DELIVERY_WORK_DIR) as work:
            # Written here, from the ledger and the settings alone: what fails is a setting.
            with configured("the file's columns, name or format"):
                files = batch_write(
                    delivery, batch, Path(work),
                    lambda parts: batch_file_names(delivery, batch, parts),
                )  # fmt: skip
            written = sum(f.rows for f in files)
            if written != batch.rows:
                # Referrals deleted since the batch was made are not written: their entries
                # go too (the deletion takes out those it can see; a batch made at the same
                # moment, a redelivery, can keep one), and the file is what the batch holds.
                batch.rows = _batch_drop_deleted(batch)
            if written != batch.rows:
                raise RuntimeError(
                    f"batch {batch.number} holds {batch.rows} referrals but {written} were written"
                )
            _upload(delivery, batch, files, Path(work))
    except TransportError as exc:
        _record_failure(delivery, batch, str(exc), permanent=exc.permanent)
        return False
    except ConfigurationError as exc:
        _record_failure(delivery, batch, pause_reason(str(exc)), permanent=True)
        return False
    except Exception as exc:  # anything else is recorded too: the batch stays owed
        logger.exception("batch %s of delivery %s failed", batch.number, delivery.pk)
        _record_failure(delivery, batch, f"{type(exc).__name__}: {exc}", permanent=False)
        return False
    finished = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.SENT, finished_at=finished, next_attempt_at=None,
        files=[f.as_dict() for f in files], bytes=sum(f.bytes for f in files),
        sha256=files[0].sha256 if len(files) == 1 else "",
    )  # fmt: skip
    batch.refresh_from_db()
    delivery_succeeded(delivery)
    return True


_DROP_DELETED = """
DELETE FROM deliveries_batchentry WHERE batch_id = %s AND NOT EXISTS (
    SELECT 1 FROM referrals_referral r WHERE r.id = deliveries_batchentry.referral_id)
"""


def _batch_drop_deleted(batch: Batch) -> int:
    """Delete ``batch``'s entries of referrals that no longer exist; its row count now."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DROP_DELETED, [batch.pk])
        cursor.execute("UPDATE deliveries_batch SET rows = rows - %s WHERE id = %s",
                       [cursor.rowcount, batch.pk])  # fmt: skip
        cursor.execute("SELECT rows FROM deliveries_batch WHERE id = %s", [batch.pk])
        return cursor.fetchone()[0]


def _upload(delivery: Delivery, batch: Batch, files: list[WrittenFile], work: Path) -> None:
    with file_channel(delivery).connect(delivery) as session:
        for written in files:
            session.upload(written.path, written.name)
        for written in files:
            marker = _marker(delivery, batch, written, work)
            if marker is not None:
                session.upload(marker, marker.name)


def _marker(delivery: Delivery, batch: Batch, written: WrittenFile, work: Path) -> Path | None:
    """The completion file a receiver waits for, uploaded after every data file is in place."""
    if delivery.marker == Delivery.Marker.MANIFEST:
        path = work / f"{written.name}.manifest.json"
        path.write_text(json.dumps({
            "file": written.name, "rows": written.rows, "bytes": written.bytes,
            "sha256": written.sha256, "batch": batch.number, "batch_id": batch.pk,
            "delivery": delivery.name, "client": delivery.client.slug,
            "kind": batch.kind, "created_at": batch.run_at.isoformat(),
        }, indent=2))  # fmt: skip
        return path
    if delivery.marker == Delivery.Marker.DONE:
        path = work / f"{written.name}.done"
        path.write_bytes(b"")
        return path
    return None


def _record_failure(delivery: Delivery, batch: Batch, error: str, *, permanent: bool) -> None:
    now = timezone.now()
    retry_at = None if permanent else now + batch_backoff(batch.attempts)
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.FAILED, finished_at=now, error=error[:4000], next_attempt_at=retry_at
    )
    batch.refresh_from_db()
    if permanent:
        # Retrying cannot help (host key or certificate mismatch, credentials refused, a
        # setting the writer cannot use): pause until an account manager fixes the settings
        # and resumes; nothing owed is lost.
        delivery_stop(delivery, f"batch {batch.number}: {error}", error)
    else:
        delivery_failed(delivery, error)


def batch_backoff(attempts: int) -> dt.timedelta:
    minutes = _BACKOFF_MINUTES[min(attempts, len(_BACKOFF_MINUTES)) - 1]
    return dt.timedelta(minutes=minutes * random.uniform(0.8, 1.2))


def file_channel(delivery: Delivery) -> BatchChannel:
    """The delivery's channel, which uploads its files; refused for a real-time one."""
    channel = channel_for(delivery.kind)
    if not isinstance(channel, BatchChannel):
        raise RunRefused(f"{delivery.get_kind_display()} is not a file delivery.")
    return channel
