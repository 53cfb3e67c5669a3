"""The ledger: storing a referral records what each delivery owes, in the same transaction;
a run freezes what is owed into numbered batches, never skipping a late commit."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries.file_runs import batch_freeze, batch_redeliver
from deliveries.models import Batch, Delivery, DeliveryItem
from deliveries.services import delivery_save
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


def _sftp_payload(client, **overrides) -> dict:
    """A file delivery as the API takes it (never connected to in these tests)."""
    return {
        "client": client.slug, "name": "Backfill", "kind": "sftp", "host": "127.0.0.1",
        "username": "nobody", "password": "pw-qz9", "host_key": "SHA256:" + "w" * 43,
        "schedule_time": "06:00", **overrides,
    }  # fmt: skip


def _days_ago(days: int) -> str:
    return (timezone.now() - dt.timedelta(days=days)).isoformat()


@pytest.mark.django_db
def test_a_delivery_created_with_an_earlier_start_owes_the_referrals_already_stored(
    manager_api, client_a, client_b
):
    first = make_referral(client_a, campaign="camp-1")
    second = make_referral(client_a, campaign="camp-2")
    make_referral(client_b)  # another client's: never
    payload = _sftp_payload(client_a, starts_at=_days_ago(1))
    created = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert created.status_code == 201, created.json()
    delivery = Delivery.objects.get(pk=created.json()["id"])
    assert owed(delivery) == {first.pk, second.pk}
    assert created.json()["pending"] == 2
    later = make_referral(client_a)
    assert owed(delivery) == {first.pk, second.pk, later.pk}  # each once

    realtime = delivery_save(Delivery(client=client_a, name="CRM", kind="api",
                                      url="https://crm.example.com/leads",
                                      starts_at=timezone.now() - dt.timedelta(days=1)))  # fmt: skip
    items = DeliveryItem.objects.filter(delivery=realtime)
    assert sorted(items.values_list("referral_id", "status")) == [
        (first.pk, "pending"), (second.pk, "pending"), (later.pk, "pending")]  # fmt: skip
    assert all(item.next_attempt_at for item in items)  # due now: the tick sends them


@pytest.mark.django_db
def test_moving_the_start_earlier_owes_the_rest_once_and_never_what_was_sent(manager_api, client_a):
    before = make_referral(client_a)
    created = manager_api.post("/api/v1/deliveries/", _sftp_payload(client_a), format="json")
    delivery = Delivery.objects.get(pk=created.json()["id"])
    assert owed(delivery) == set()  # it starts from its creation
    after = make_referral(client_a)
    batch = batch_freeze(delivery)  # "after" is in a batch now, no longer owed
    assert set(batch.entries.values_list("referral_id", flat=True)) == {after.pk}

    url = f"/api/v1/deliveries/{delivery.pk}/"
    moved = manager_api.patch(url, {"kind": "sftp", "starts_at": _days_ago(1)}, format="json")
    assert moved.status_code == 200, moved.json()
    assert owed(delivery) == {before.pk}
    again = {"kind": "sftp", "starts_at": _days_ago(2)}
    manager_api.patch(url, again, format="json")  # again: nothing twice
    assert DeliveryItem.objects.filter(delivery=delivery).count() == 1
    assert owed(delivery) == {before.pk}


@pytest.mark.django_db
def test_a_campaign_added_to_the_scope_owes_its_stored_referrals(manager_api, client_a):
    first = make_referral(client_a, campaign="camp-1")
    second = make_referral(client_a, campaign="camp-2")
    one, two = (Campaign.objects.get(client=client_a, external_id=c) for c in ("camp-1", "camp-2"))
    payload = _sftp_payload(client_a, starts_at=_days_ago(1), all_campaigns=False,
                            campaigns=[one.pk])  # fmt: skip
    created = manager_api.post("/api/v1/deliveries/", payload, format="json")
    assert created.status_code == 201, created.json()
    delivery = Delivery.objects.get(pk=created.json()["id"])
    assert owed(delivery) == {first.pk}
    widened = manager_api.patch(f"/api/v1/deliveries/{delivery.pk}/",
                                {"kind": "sftp", "campaigns": [one.pk, two.pk]},
                                format="json")  # fmt: skip
    assert widened.status_code == 200, widened.json()
    assert owed(delivery) == {first.pk, second.pk}


@pytest.mark.django_db
def test_a_delivery_added_in_the_admin_with_chosen_campaigns_backfills_them(
    client, manager, client_a
):
    first = make_referral(client_a, campaign="camp-1")
    make_referral(client_a, campaign="camp-2")
    one = Campaign.objects.get(client=client_a, external_id="camp-1")
    start = timezone.localtime(timezone.now() - dt.timedelta(days=1))
    client.force_login(manager)
    response = client.post("/admin/deliveries/delivery/add/", {
        "client": client_a.pk, "name": "Nightly", "kind": "sftp", "active": "on",
        "campaigns": [one.pk], "starts_at_0": start.strftime("%Y-%m-%d"),
        "starts_at_1": start.strftime("%H:%M:%S"), "host": "127.0.0.1", "username": "nobody",
        "password": "pw-qz9", "remote_dir": ".", "host_key": "SHA256:" + "w" * 43,
        "tls_mode": "explicit", "file_name_template": "f_{{{batch}}}.csv",
        "name_time_zone": "client", "header": "on", "delimiter": ",", "quoting": "minimal",
        "marker": "none", "schedule_kind": "daily", "schedule_minute": "0",
        "schedule_time": "06:00", "http_method": "POST", "body_format": "json",
        "auth_kind": "none", "connect_timeout": "5", "total_timeout": "15",
        "accepted_statuses": "2xx", "success_match": "none", "max_in_flight": "8",
        "pause_after_minutes": "1440",
    })  # fmt: skip
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert owed(Delivery.objects.get(name="Nightly")) == {first.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_referral_stored_while_a_backfilling_delivery_is_saved_is_owed(client_a, monkeypatch):
    """The referral's transaction cannot see the uncommitted delivery, nor the save's backfill
    the uncommitted referral: the pass after both have ended owes it."""
    from rokt_platform.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the settling task, in the saver
    saved: list[Delivery] = []

    def save_backfilling_delivery() -> None:
        try:
            saved.append(delivery_save(Delivery(
                client=client_a, name="CRM", kind="api", url="https://crm.example.com/leads",
                starts_at=timezone.now() - dt.timedelta(days=1))))  # fmt: skip
        finally:
            connection.close()

    with transaction.atomic():
        [outcome] = referrals_ingest(records=[referral_record(client_a)])
        saver = threading.Thread(target=save_backfilling_delivery)
        saver.start()
        for _ in range(100):  # until the save has committed (each look sees the newest commit)
            if Delivery.objects.filter(name="CRM").exists():
                break
            threading.Event().wait(0.1)
        assert Delivery.objects.exists(), "the delivery's save never committed"
    saver.join(30)
    assert not saver.is_alive()
    items = DeliveryItem.objects.filter(delivery=saved[0])
    assert list(items.values_list("referral_id", flat=True)) == [outcome.id]
