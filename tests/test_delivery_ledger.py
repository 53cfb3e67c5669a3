"""The ledger: storing a referral records what each delivery owes, in the same transaction;
a run freezes what is owed into numbered batches, never skipping a late commit."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.file_runs import batch_freeze, batch_redeliver
from deliveries.models import Batch, DeliveryItem
from referrals.models import Campaign, Referral
from referrals.services import referrals_ingest
from tests.factories import make_file_delivery, make_referral, referral_record


def owed(delivery) -> set[int]:
    return set(
        DeliveryItem.objects.filter(delivery=delivery, status="file").values_list(
            "referral_id", flat=True
        )
    )


@pytest.mark.django_db
def test_storing_a_referral_records_one_item_per_matching_delivery(client_a, client_b):
    everything = make_file_delivery(client_a)
    paused = make_file_delivery(client_a, paused_at=timezone.now(), paused_reason="maintenance")
    inactive = make_file_delivery(client_a, active=False)
    future = make_file_delivery(client_a, starts_at=timezone.now() + dt.timedelta(days=1))
    other_client = make_file_delivery(client_b)
    first = make_referral(client_a, campaign="camp-1")
    second_campaign = make_referral(client_a, campaign="camp-2")
    scoped = make_file_delivery(
        client_a, campaigns=[Campaign.objects.get(client=client_a, external_id="camp-2")]
    )
    third = make_referral(client_a, campaign="camp-2")
    fourth = make_referral(client_a, campaign="camp-1")

    assert owed(everything) == {first.pk, second_campaign.pk, third.pk, fourth.pk}
    # Paused deliveries keep what arrives meanwhile; it goes out on resume.
    assert owed(paused) == {first.pk, second_campaign.pk, third.pk, fourth.pk}
    assert owed(inactive) == set()
    assert owed(future) == set()
    assert owed(other_client) == set()
    # A delivery starts from its creation (or its chosen start), and only in its scope.
    assert owed(scoped) == {third.pk}


@pytest.mark.django_db
def test_every_way_of_storing_a_referral_writes_the_ledger(client_a):
    delivery = make_file_delivery(client_a)
    stored = make_referral(client_a)  # the ingestion service (COPY on PostgreSQL)
    campaign = stored.campaign
    common = {"client": client_a, "campaign": campaign, "opted_in_at": timezone.now()}
    saved = Referral(external_id="orm-save", **common)
    saved.save()
    [bulk] = Referral.objects.bulk_create([Referral(external_id="orm-bulk", **common)])
    assert owed(delivery) == {stored.pk, saved.pk, bulk.pk}


@pytest.mark.django_db
def test_a_rolled_back_referral_leaves_no_item(client_a):
    delivery = make_file_delivery(client_a)
    with pytest.raises(RuntimeError), transaction.atomic():
        referrals_ingest(records=[referral_record(client_a)])
        assert len(owed(delivery)) == 1
        raise RuntimeError("the storing transaction fails after the insert")
    assert owed(delivery) == set()
    assert not Referral.objects.filter(client=client_a).exists()


@pytest.mark.django_db
def test_freezing_moves_what_is_owed_into_numbered_batches(client_a):
    delivery = make_file_delivery(client_a)
    assert batch_freeze(delivery) is None  # nothing owed, no empty files wanted
    first = {make_referral(client_a).pk for _ in range(3)}
    batch_one = batch_freeze(delivery)
    assert (batch_one.number, batch_one.rows, batch_one.kind) == (1, 3, "new")
    assert set(batch_one.entries.values_list("referral_id", flat=True)) == first
    assert batch_freeze(delivery) is None
    later = make_referral(client_a).pk
    batch_two = batch_freeze(delivery)
    assert (batch_two.number, batch_two.rows) == (2, 1)
    assert list(batch_two.entries.values_list("referral_id", flat=True)) == [later]
    assert owed(delivery) == set()


@pytest.mark.django_db
def test_empty_batches_only_when_the_delivery_asks(client_a):
    delivery = make_file_delivery(client_a, send_empty=True)
    batch = batch_freeze(delivery)
    assert (batch.number, batch.rows) == (1, 0)


@pytest.mark.django_db
def test_redelivery_takes_the_range_again_in_scope(client_a):
    delivery = make_file_delivery(client_a)
    start = timezone.now()
    inside = [make_referral(client_a).pk for _ in range(2)]
    batch_freeze(delivery)  # sent once already
    end = timezone.now()
    make_referral(client_a)  # after the range
    batch = batch_redeliver(delivery, start, end, requested_by="manager")
    assert batch.kind == Batch.Kind.REDELIVERY and batch.number == 2 and batch.rows == 2
    assert sorted(batch.entries.values_list("referral_id", flat=True)) == sorted(inside)
    # The referral after the range is still owed once, by the ledger, not by the redelivery.
    assert len(owed(delivery)) == 1
    with pytest.raises(ValueError, match="after its start"):
        batch_redeliver(delivery, end, start)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_referral_committing_during_a_freeze_goes_to_the_next_batch(client_a):
    """Ids are given at insert, not commit: a watermark would skip this referral forever."""
    delivery = make_file_delivery(client_a)
    make_referral(client_a)
    inserted, release = threading.Event(), threading.Event()
    late: list[int] = []

    def store_slowly() -> None:
        try:
            with transaction.atomic():
                [outcome] = referrals_ingest(records=[referral_record(client_a)])
                late.append(outcome.id)
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    writer = threading.Thread(target=store_slowly)
    writer.start()
    assert inserted.wait(10)
    first = batch_freeze(delivery)  # the slow referral is not committed yet
    release.set()
    writer.join(10)
    second = batch_freeze(delivery)
    first_ids = set(first.entries.values_list("referral_id", flat=True))
    second_ids = set(second.entries.values_list("referral_id", flat=True))
    assert late[0] not in first_ids
    assert second_ids == {late[0]}
    assert not first_ids & second_ids
