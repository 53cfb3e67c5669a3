"""A few referrals, one statement (``referrals.ingest_few``): a collector's usual request is
stored with its ledger items in a single statement on PostgreSQL, exactly as the general path
would store it, all or nothing; whatever that statement cannot decide goes, whole request, to
the general path.

Transactional tests: the fast path runs only outside a caller's transaction (pytest-django's
plain ``db`` wraps each test in one)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import api_runs
from deliveries.models import DeliveryItem
from referrals.ingest_few import AT_ONCE_AT_MOST
from referrals.models import Campaign, Referral
from referrals.services import referrals_ingest
from tests.factories import make_api_delivery, make_client, make_file_delivery, referral_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queued(monkeypatch) -> list[dict]:
    """What the ledger queued for sending, per call (the ledger imports it at each call)."""
    calls: list[dict] = []
    monkeypatch.setattr(api_runs, "api_items_enqueue", lambda by_delivery: calls.append(
        {delivery: list(items) for delivery, items in by_delivery.items()}))  # fmt: skip
    return calls


@pytest.fixture
def alpha():
    client = make_client("alpha")
    referrals_ingest(records=[referral_record(client, campaign="c1"),
                              referral_record(client, campaign="c2")])  # fmt: skip
    return client


def ingest_one(record: dict):
    [outcome] = referrals_ingest(records=[record])
    return outcome


def test_one_referral_and_its_items_are_stored_in_one_statement(alpha, queued):
    realtime = make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    files = make_file_delivery(alpha)
    record = referral_record(alpha, campaign="c1")

    with CaptureQueriesContext(connection) as statements:
        outcome = ingest_one(record)

    assert len(statements) == 1, [q["sql"] for q in statements]
    assert outcome.status == "created"
    referral = Referral.objects.get(pk=outcome.id)
    assert (referral.client, referral.campaign.external_id) == (alpha, "c1")
    assert referral.external_id == record["external_id"] and referral.email == record["email"]
    items = {i.delivery_id: i for i in DeliveryItem.objects.filter(referral=referral)}
    assert {d: i.status for d, i in items.items()} == {realtime.pk: "pending", files.pk: "file"}
    assert queued == [{realtime.pk: [items[realtime.pk].pk]}]  # queued once stored


def test_every_value_is_stored_as_the_general_path_stores_it(alpha):
    fields = {
        "campaign": "c1", "title": "Dr", "gender": "F", "birth_date": "1987-03-04", "age": 37,
        "mobile": "+447700900123", "address1": "1 Way", "address2": "", "city": "Leeds",
        "state": "West Yorkshire", "zip_code": "LS1 1AA", "country": "gb", "language": "en-GB",
        "ip_address": "2001:db8::7", "user_agent": "Mozilla/5.0", "browser": "Firefox",
        "browser_version": "128.0", "os": "Linux", "device": "desktop", "ad_text": "Save 10%",
        "ad_response": "yes", "audience_id": "aud-1", "audience_name": "Savers",
        "bid_price": "1.2500", "currency": "gbp", "confirmation_ref": "conf-9",
        "opted_in_at": "2024-06-01T12:30:00+02:00",
        "extra": {"utm": {"source": "news", "tags": ["a", "b"]}, "score": 3.5, "none": None},
    }  # fmt: skip
    one = ingest_one(referral_record(alpha, **fields))
    blank = {name: None for name in ("birth_date", "age", "ip_address", "bid_price")}
    few = referrals_ingest(records=[referral_record(alpha, **fields),
                                    referral_record(alpha, **{**fields, **blank})])  # fmt: skip
    # The general path: more records than go at once.
    general = referrals_ingest(records=[referral_record(alpha, **fields),
                                        referral_record(alpha, **{**fields, **blank})] * 1
                                       + [referral_record(alpha) for _ in range(AT_ONCE_AT_MOST)])

    def stored(pk: int) -> dict:
        values = model_to_dict(Referral.objects.get(pk=pk))
        for name in ("id", "external_id", "email", "last_name"):  # each record's own
            values.pop(name)
        return values

    assert stored(one.id) == stored(few[0].id) == stored(general[0].id)
    assert stored(few[1].id) == stored(general[1].id)
    assert Referral.objects.get(pk=few[1].id).age is None
    referral = Referral.objects.get(pk=one.id)
    assert referral.bid_price == Decimal("1.2500") and referral.age == 37
    assert referral.opted_in_at == dt.datetime(2024, 6, 1, 10, 30, tzinfo=dt.UTC)
    assert referral.extra["utm"] == {"source": "news", "tags": ["a", "b"]}
    assert abs(referral.created_at - timezone.now()) < dt.timedelta(minutes=1)


def test_a_repeated_external_id_is_a_duplicate_that_changes_nothing(alpha, queued):
    make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    record = referral_record(alpha, campaign="c1")
    first = ingest_one(record)
    queued.clear()
    items = DeliveryItem.objects.count()

    again = ingest_one({**record, "email": "changed@example.com"})

    assert (again.status, again.id) == ("duplicate", first.id)
    assert Referral.objects.get(pk=first.id).email == record["email"]
    assert DeliveryItem.objects.count() == items and queued == []


def test_a_new_campaign_is_created_and_the_referral_stored(alpha, queued):
    realtime = make_api_delivery(alpha, "http://127.0.0.1:9/hook")

    outcome = ingest_one(referral_record(alpha, campaign="brand-new", campaign_name="Brand New"))

    assert outcome.status == "created"
    campaign = Referral.objects.get(pk=outcome.id).campaign
    assert (campaign.client, campaign.external_id, campaign.name) == (alpha, "brand-new",
                                                                      "Brand New")  # fmt: skip
    assert [list(call) for call in queued] == [[realtime.pk]]


def test_an_unknown_client_is_reported_and_nothing_stored(alpha):
    before = (Referral.objects.count(), Campaign.objects.count())

    outcome = ingest_one({**referral_record(alpha), "client": "nobody"})

    assert outcome.status == "invalid"
    assert outcome.errors == [{"field": "client", "message": "Unknown client 'nobody'."}]
    assert (Referral.objects.count(), Campaign.objects.count()) == before


def test_only_deliveries_in_scope_active_and_started_owe_the_referral(alpha):
    c2 = Campaign.objects.get(client=alpha, external_id="c2")
    scoped = make_file_delivery(alpha, campaigns=[c2])
    everything = make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    inactive = make_api_delivery(alpha, "http://127.0.0.1:9/hook", active=False)
    later = make_api_delivery(alpha, "http://127.0.0.1:9/hook",
                              starts_at=timezone.now() + dt.timedelta(days=1))  # fmt: skip
    other = make_api_delivery(make_client("bravo"), "http://127.0.0.1:9/hook")

    in_c1 = ingest_one(referral_record(alpha, campaign="c1")).id
    in_c2 = ingest_one(referral_record(alpha, campaign="c2")).id

    def owed(delivery) -> set[int]:
        return set(DeliveryItem.objects.filter(delivery=delivery)
                   .values_list("referral_id", flat=True))  # fmt: skip

    assert owed(everything) == {in_c1, in_c2}
    assert owed(scoped) == {in_c2}
    assert owed(inactive) == owed(later) == owed(other) == set()


def test_in_a_callers_transaction_the_items_go_out_on_its_commit_or_never(alpha, queued):
    make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    with transaction.atomic():
        kept = ingest_one(referral_record(alpha, campaign="c1"))
        assert queued == []  # not before the caller's commit
    assert len(queued) == 1

    queued.clear()
    record = referral_record(alpha, campaign="c1")
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest_one(record)
        raise RuntimeError("the caller fails after storing")
    assert queued == []
    assert not Referral.objects.filter(external_id=record["external_id"]).exists()
    assert Referral.objects.filter(pk=kept.id).exists()


def test_a_few_referrals_are_stored_together_and_queued_once_committed(alpha, queued):
    realtime = make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    records = [referral_record(alpha, campaign=c) for c in ("c1", "c2", "c1")]

    with CaptureQueriesContext(connection) as statements:
        outcomes = referrals_ingest(records=records)

    # One statement in a transaction of its own: all stored, or none.
    assert [q["sql"].split()[0] for q in statements] == ["BEGIN", "WITH", "COMMIT"]
    assert [(o.status, o.external_id) for o in outcomes] == [
        ("created", r["external_id"]) for r in records
    ]
    stored = Referral.objects.in_bulk([o.id for o in outcomes])
    assert [stored[o.id].external_id for o in outcomes] == [r["external_id"] for r in records]
    assert [stored[o.id].campaign.external_id for o in outcomes] == ["c1", "c2", "c1"]
    items = DeliveryItem.objects.filter(delivery=realtime)
    assert sorted(items.values_list("referral_id", flat=True)) == sorted(stored)
    assert queued == [{realtime.pk: sorted(items.values_list("pk", flat=True))}]


@pytest.mark.parametrize("spoil", ["duplicate", "new campaign", "unknown client", "repeat"])
def test_a_request_the_statement_cannot_store_whole_goes_whole_to_the_general_path(
    alpha, queued, spoil
):
    realtime = make_api_delivery(alpha, "http://127.0.0.1:9/hook")
    stored_before = referrals_ingest(records=[referral_record(alpha, campaign="c1")])[0]
    queued.clear()
    records = [referral_record(alpha, campaign="c1"), referral_record(alpha, campaign="c2")]
    odd = {
        "duplicate": {"external_id": stored_before.external_id},
        "new campaign": {"campaign": "brand-new"},
        "unknown client": {"client": "nobody"},
        "repeat": {"external_id": records[0]["external_id"]},
    }[spoil]
    records.append({**referral_record(alpha, campaign="c1"), **odd})
    before = Referral.objects.filter(client=alpha).count()

    outcomes = referrals_ingest(records=records)

    expected = {"duplicate": "duplicate", "new campaign": "created",
                "unknown client": "invalid", "repeat": "duplicate"}[spoil]  # fmt: skip
    assert [o.status for o in outcomes] == ["created", "created", expected]
    if spoil == "duplicate":
        assert outcomes[2].id == stored_before.id
    if spoil == "repeat":
        assert outcomes[2].id == outcomes[0].id
    created = [o.id for o in outcomes if o.status == "created"]
    # Each stored referral once, with one item each: nothing left over from the attempt.
    assert Referral.objects.filter(client=alpha).count() == before + len(created)
    items = DeliveryItem.objects.filter(delivery=realtime).exclude(referral_id=stored_before.id)
    assert sorted(items.values_list("referral_id", flat=True)) == sorted(created)
    assert [sorted(ids) for call in queued for ids in call.values()] == [
        sorted(items.values_list("pk", flat=True))
    ]
