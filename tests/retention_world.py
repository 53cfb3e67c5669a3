"""A world with every kind of row the retention purge looks at, some expired, some owed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from deliveries.file_runs import batch_freeze
from deliveries.models import Attempt, Batch, Delivery, DeliveryItem
from tests.factories import make_api_delivery, make_file_delivery, make_referral

OLD = dt.timedelta(days=5)  # older than the retention the tests set (3 days)


@dataclass
class World:
    api: Delivery
    files: Delivery
    api_b: Delivery
    sent_batch: Batch
    unsent_batch: Batch
    anonymisable: list[int] = field(default_factory=list)  # client A's, nothing owed
    owed: list[int] = field(default_factory=list)  # client A's, still owed somewhere
    failing_item: int = 0


def _attempt(item: DeliveryItem, outcome: str, at: dt.datetime, **extra) -> None:
    Attempt.objects.create(
        delivery_id=item.delivery_id, item=item, referral_id=item.referral_id, started_at=at,
        method="POST", url="https://crm.example.com/hook", outcome=outcome,
        latency_ms=40.0, status_code=200 if outcome == "delivered" else 500, **extra,
    )  # fmt: skip


def _settle(item: DeliveryItem, status: str, at: dt.datetime) -> None:
    DeliveryItem.objects.filter(pk=item.pk).update(
        status=status, delivered_at=at if status == "delivered" else None,
        created_at=at - dt.timedelta(minutes=5),
    )  # fmt: skip
    _attempt(item, status, at)


def world_build(client_a, client_b) -> World:
    """Client A (New York: its days are not UTC days) with a real-time and a file delivery,
    client B (UTC) with a real-time one; expired rows are five days old."""
    now = timezone.now()
    old = now - OLD
    client_a.time_zone = "America/New_York"
    client_a.save()
    api = make_api_delivery(client_a, "https://crm.example.com/hook")
    files = make_file_delivery(client_a)
    api_b = make_api_delivery(client_b, "https://crm.example.com/b")
    first = [make_referral(client_a) for _ in range(6)]
    sent = batch_freeze(files)
    Batch.objects.filter(pk=sent.pk).update(
        status="sent", started_at=old, finished_at=old, rows=6, files=[{"name": "a_1.csv"}]
    )
    in_unsent = [make_referral(client_a) for _ in range(2)]
    unsent = batch_freeze(files)  # frozen, not yet sent: its entries are owed
    file_owed = make_referral(client_a)  # a file item owed
    items = {i.referral_id: i for i in DeliveryItem.objects.filter(delivery=api)}
    for referral in [*first[:3], *in_unsent, file_owed]:
        _settle(items[referral.pk], "delivered", old)
    _settle(items[first[3].pk], "rejected", old)
    failing = items[first[4].pk]  # still retried: owed, its history kept
    DeliveryItem.objects.filter(pk=failing.pk).update(
        status="failed", attempts=2, next_attempt_at=now + dt.timedelta(minutes=5),
        created_at=old,
    )  # fmt: skip
    _attempt(failing, "failed", old)
    _attempt(failing, "failed", old + dt.timedelta(hours=1))
    recent = items[first[5].pk]  # failed long ago, delivered just now
    _attempt(recent, "failed", old)
    _settle(recent, "delivered", now - dt.timedelta(minutes=1))
    DeliveryItem.objects.filter(pk=recent.pk).update(created_at=old)
    Attempt.objects.create(  # a test send, long ago
        delivery=api, started_at=old, method="POST", url="https://crm.example.com/hook",
        outcome="delivered", test=True,
    )  # fmt: skip
    b_referrals = [make_referral(client_b) for _ in range(3)]
    b_items = {i.referral_id: i for i in DeliveryItem.objects.filter(delivery=api_b)}
    for referral in b_referrals[:2]:
        _settle(b_items[referral.pk], "delivered", old)
    Delivery.objects.filter(pk=api_b.pk).update(failing_since=now, last_error="HTTP 500")
    return World(
        api=api, files=files, api_b=api_b, sent_batch=sent, unsent_batch=unsent,
        anonymisable=[r.pk for r in [*first[:4], first[5]]],
        owed=[first[4].pk, *[r.pk for r in in_unsent], file_owed.pk],
        failing_item=failing.pk,
    )  # fmt: skip
