"""None twice, none missed: file deliveries through a real worker and beat on Redis, while
referrals keep arriving, two runs start at once, the worker is SIGKILLed mid-upload and the
server is stopped mid-upload."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from customfields.sources import STANDARD_FIELDS
from deliveries.models import Batch, DeliveryItem
from deliveries.tasks import run_file_delivery
from referrals.services import referrals_ingest
from rokt_platform.celery import app
from tests.delivery_helpers import arrived, clear, csv_rows, sftp_delivery
from tests.factories import make_client, referral_record
from tests.processes import Cluster, stop, wait_for
from tests.servers.throttle import ThrottledProxy

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _state() -> list[str]:
    from deliveries.models import Delivery

    return [
        f"delivery {d.pk}: paused={d.paused_reason!r} failing={d.last_error!r}"
        for d in Delivery.objects.all()
    ] + [
        f"batch {b.number}: {b.status} attempts={b.attempts} rows={b.rows} error={b.error!r}"
        for b in Batch.objects.order_by("number")
    ]


@pytest.fixture
def cluster(transactional_db, tmp_path):
    app.control.purge()
    running = Cluster(tmp_path, queues="deliveries_files,housekeeping", state=_state,
                      env={"DELIVERY_TICK_SECONDS": "1"})  # fmt: skip
    yield running
    running.stop()


def ingest(client, count: int) -> list[str]:
    ids = []
    for start_at in range(0, count, 250):
        records = [referral_record(client) for _ in range(min(250, count - start_at))]
        outcomes = referrals_ingest(records=records)
        assert {o.status for o in outcomes} == {"created"}
        ids += [o.external_id for o in outcomes]
    return ids


def uploading(directory) -> bool:
    return any(p.name.endswith(".part") for p in directory.iterdir())


def test_every_referral_arrives_exactly_once_through_kills_and_outages(cluster, sshd):
    clear(sshd.upload_dir)
    # Slow the upload down (500 KB/s: seconds per batch) so that "mid-upload" lasts long
    # enough to act in.
    proxy = ThrottledProxy(sshd.host, sshd.port, upload_rate=500_000)
    columns = [{"source": "external_id", "output": "Id"}] + [
        {"source": name, "output": name} for name in STANDARD_FIELDS if name != "external_id"
    ]
    client = make_client("alpha", time_zone="Europe/London")
    delivery = sftp_delivery(
        client, sshd, port=proxy.port, schedule_kind="interval", schedule_every_minutes=1,
        file_name_template="{{{client}}}_{{{batch}}}.csv", columns=columns,
    )  # fmt: skip
    expected = ingest(client, 3000)
    cluster.start_beat()
    cluster.start_worker()
    try:
        # Two runs at once: one sends, the other finds the delivery claimed and does nothing.
        run_file_delivery.delay(delivery.pk, True)
        run_file_delivery.delay(delivery.pk, True)
        wait_for(lambda: uploading(sshd.upload_dir), timeout=60,
                 what="an upload to start", logs=cluster.logs)  # fmt: skip
        stop(cluster.worker, signal.SIGKILL)  # the worker dies mid-upload
        assert Batch.objects.get(delivery=delivery, number=1).status == "sending"

        # Referrals keep arriving while the worker is down, and while runs go on.
        expected += ingest(client, 500)
        feeding = threading.Thread(target=lambda: expected.extend(ingest(client, 1000)))
        feeding.start()
        cluster.start_worker()  # beat's tick sees the orphaned batch and resends it
        first = Batch.objects.filter(delivery=delivery, number=1)
        wait_for(lambda: first.filter(status="sending", attempts=2).exists()
                 and uploading(sshd.upload_dir),
                 timeout=60, what="the resend to start", logs=cluster.logs)  # fmt: skip
        sshd.stop()  # the server goes away mid-upload
        wait_for(lambda: Batch.objects.filter(delivery=delivery, status="failed").exists(),
                 timeout=60, what="the batch to fail", logs=cluster.logs)  # fmt: skip
        feeding.join(60)
        sshd.start()
        run_file_delivery.delay(delivery.pk, True)  # "send now" after the outage

        def all_sent() -> bool:
            pending = DeliveryItem.objects.filter(delivery=delivery, status="file")
            unsent = Batch.objects.filter(delivery=delivery).exclude(status="sent")
            if pending.exists() and not unsent.exists():
                run_file_delivery.delay(delivery.pk, True)  # what arrived after the last run
            return not pending.exists() and not unsent.exists()

        wait_for(all_sent, timeout=180, what="every batch to be sent", logs=cluster.logs)
    finally:
        proxy.close()

    files = arrived(sshd.upload_dir)
    assert not any(name.endswith(".part") for name in files)
    delivered = [row[0] for data in files.values() for row in csv_rows(data)[1:]]
    assert len(delivered) == len(set(delivered)), "a referral arrived twice"
    assert sorted(delivered) == sorted(expected), "a referral is missing"
    batches = Batch.objects.filter(delivery=delivery).order_by("number")
    assert sorted(files) == sorted(f["name"] for b in batches for f in b.files)
    assert batches[0].attempts >= 2  # killed mid-upload, then resent
    assert any(b.attempts >= 2 and b.error == "" for b in batches[1:]) or batches[0].attempts >= 3


def test_beat_runs_a_due_delivery_once_and_then_waits_for_its_next_slot(cluster, sshd):
    from django.utils import timezone

    from deliveries.models import Delivery

    clear(sshd.upload_dir)
    client = make_client("alpha", time_zone="Europe/London")
    delivery = sftp_delivery(
        client, sshd, schedule_kind="interval", schedule_every_minutes=60,
        file_name_template="due_{{{batch}}}.csv",
        columns=[{"source": "external_id", "output": "Id"}],
    )  # fmt: skip
    expected = ingest(client, 20)
    # Due since two hours: beat was down through two slots; the catch-up is one run.
    Delivery.objects.filter(pk=delivery.pk).update(
        next_run_at=timezone.now() - timezone.timedelta(hours=2)
    )
    cluster.start_beat()
    cluster.start_worker()
    wait_for(lambda: Batch.objects.filter(delivery=delivery, status="sent").exists(),
             timeout=60, what="beat to run the due delivery", logs=cluster.logs)  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.next_run_at > timezone.now()
    assert delivery.next_run_at.minute == 0  # the next whole hour, not a slot in the past
    sent = csv_rows(arrived(sshd.upload_dir)["due_000001.csv"])
    assert sorted(row[0] for row in sent[1:]) == sorted(expected)
    # Several ticks later: still one batch (nothing new, and the slot is not due again).
    time.sleep(4)
    assert Batch.objects.filter(delivery=delivery).count() == 1
