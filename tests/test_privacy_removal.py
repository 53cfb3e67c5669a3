"""``referrals_remove``: a referral and every copy of its data go, and nothing else does."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.api_items import ItemRecord, items_record
from deliveries.claims import delivery_claim
from deliveries.file_runs import batch_freeze, batch_send
from deliveries.filewriter import batch_write
from deliveries.models import Attempt, Batch, BatchEntry, DeliveryItem
from privacy.removal import RemovalCounts, referrals_remove
from referrals.models import Referral
from tests.factories import make_api_delivery, make_file_delivery, make_referral
from tests.processes import wait_for


def _attempt(item: DeliveryItem, body: str) -> Attempt:
    return Attempt.objects.create(
        delivery_id=item.delivery_id, item=item, referral_id=item.referral_id, method="POST",
        url="https://crm.example.com/leads", request_body=body, response_body="ok",
        outcome="delivered",
    )  # fmt: skip


def _record(item: DeliveryItem) -> ItemRecord:
    return ItemRecord(
        item_id=item.pk, delivery_id=item.delivery_id, referral_id=item.referral_id, number=1,
        started_at=timezone.now(), method="POST", url="https://crm.example.com/leads",
        request_headers=[], request_body='{"email": "ada@example.com"}', status_code=200,
        response_headers=[], response_body="ok", latency_ms=12.0, error_class="",
        outcome="delivered", attempt_reason="", item_status="delivered", item_reason="",
        delivered_at=timezone.now(), next_attempt_at=None,
    )  # fmt: skip


@pytest.mark.django_db
def test_it_deletes_the_referrals_ledger_items_batch_entries_and_attempts(client_a, tmp_path):
    api = make_api_delivery(client_a, "https://crm.example.com/leads")
    files = make_file_delivery(client_a)
    sent_one = make_referral(client_a, email="ada@example.com")
    kept = make_referral(client_a, email="grace@example.com")
    sent_batch = batch_freeze(files)
    Batch.objects.filter(pk=sent_batch.pk).update(status=Batch.Status.SENT)
    owed_one = make_referral(client_a, email="ada@example.com")  # owed, not yet in a batch
    for item in DeliveryItem.objects.filter(delivery=api):
        _attempt(item, f"body of {item.referral_id}")
    DeliveryItem.objects.filter(delivery=api, referral=sent_one).update(status="delivered")

    counts = referrals_remove([sent_one.pk, owed_one.pk])

    assert counts == RemovalCounts(
        referrals=2, ledger_items=3, batch_entries=1, attempts=2, unsent_batches=0,
        sent_batches=1, delivered_items=1,
    )  # fmt: skip
    assert list(Referral.objects.values_list("pk", flat=True)) == [kept.pk]
    assert set(DeliveryItem.objects.values_list("referral_id", flat=True)) == {kept.pk}
    assert set(BatchEntry.objects.values_list("referral_id", flat=True)) == {kept.pk}
    assert list(Attempt.objects.values_list("referral_id", flat=True)) == [kept.pk]
    # A sent batch keeps the count it was sent with.
    assert Batch.objects.get(pk=sent_batch.pk).rows == 2


@pytest.mark.django_db
def test_an_unsent_batch_is_written_without_a_removed_referral(client_a, tmp_path):
    files = make_file_delivery(client_a)
    gone = make_referral(client_a, email="ada@example.com")
    kept = make_referral(client_a, email="grace@example.com")
    batch = batch_freeze(files)

    counts = referrals_remove([gone.pk])

    assert (counts.batch_entries, counts.unsent_batches, counts.sent_batches) == (1, 1, 0)
    batch.refresh_from_db()
    assert batch.rows == 1  # what the send checks the written file against
    [written] = batch_write(files, batch, tmp_path, lambda parts: ["out.csv"])
    text = written.path.read_text()
    assert written.rows == 1
    assert "grace@example.com" in text and "ada@example.com" not in text
    assert kept.external_id in text and gone.external_id not in text


@pytest.mark.django_db
def test_an_outcome_recorded_after_the_removal_writes_no_attempt(client_a):
    api = make_api_delivery(client_a, "https://crm.example.com/leads")
    gone = make_referral(client_a)
    kept = make_referral(client_a)
    gone_item = DeliveryItem.objects.get(delivery=api, referral=gone)
    kept_item = DeliveryItem.objects.get(delivery=api, referral=kept)
    DeliveryItem.objects.filter(delivery=api).update(status="sending")

    referrals_remove([gone.pk])  # while both requests were in flight
    items_record([_record(gone_item), _record(kept_item)])
    items_record([_record(gone_item)])  # the one-record statement too

    assert list(Attempt.objects.values_list("item_id", flat=True)) == [kept_item.pk]
    assert DeliveryItem.objects.get(pk=kept_item.pk).status == "delivered"
    assert not DeliveryItem.objects.filter(pk=gone_item.pk).exists()


@pytest.mark.django_db
def test_removing_nothing_or_what_is_already_gone_counts_nothing(client_a):
    gone = make_referral(client_a)
    referrals_remove([gone.pk])

    assert referrals_remove([]) == RemovalCounts()
    assert referrals_remove([gone.pk, gone.pk]) == RemovalCounts()


def _advisory_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_removal_waits_for_a_file_run_holding_the_delivery_then_shrinks_its_batch(client_a):
    files = make_file_delivery(client_a)
    gone = make_referral(client_a)
    make_referral(client_a)
    batch = batch_freeze(files)
    claimed, release = threading.Event(), threading.Event()
    outcome: dict[str, RemovalCounts] = {}

    def run_in_progress() -> None:  # a run writing or uploading the batch
        try:
            with delivery_claim(files.pk) as held:
                assert held
                claimed.set()
                release.wait(30)
        finally:
            connection.close()

    def erasure() -> None:
        try:
            outcome["counts"] = referrals_remove([gone.pk])
        finally:
            connection.close()

    run = threading.Thread(target=run_in_progress)
    run.start()
    assert claimed.wait(30)
    removal = threading.Thread(target=erasure)
    removal.start()
    wait_for(lambda: _advisory_waiters() == 1, timeout=30, what="the removal to wait")
    # While the run holds the claim, the batch is as it was frozen.
    assert BatchEntry.objects.filter(batch=batch).count() == 2
    release.set()
    run.join(30)
    removal.join(30)

    assert outcome["counts"].unsent_batches == 1
    assert not BatchEntry.objects.filter(batch=batch, referral_id=gone.pk).exists()
    assert BatchEntry.objects.filter(batch=batch).count() == 1
    assert Batch.objects.get(pk=batch.pk).rows == 1


@pytest.mark.django_db
def test_a_batch_made_beside_a_removal_is_sent_without_the_referral_it_lost(
    client_a, tmp_path, settings
):
    settings.DELIVERY_WORK_DIR = tmp_path
    files = make_file_delivery(client_a, port=1)  # nothing listens: the upload fails, after
    gone = make_referral(client_a)  # the file has been written and checked
    make_referral(client_a)
    batch = batch_freeze(files)
    referrals_remove([gone.pk])
    # A redelivery batch made at the same moment: its entries were committed after the
    # removal looked, for a referral its own query had read before the removal committed.
    BatchEntry.objects.create(batch=batch, referral_id=gone.pk)
    Batch.objects.filter(pk=batch.pk).update(rows=2)
    batch.refresh_from_db()

    assert not batch_send(files, batch)

    batch.refresh_from_db()
    assert batch.error and "were written" not in batch.error  # the upload's failure
    assert batch.rows == 1
    assert not BatchEntry.objects.filter(referral_id=gone.pk).exists()
