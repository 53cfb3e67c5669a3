"""The retention purge racing a real worker (threads pool) and beat on the real Redis, while
referrals keep arriving: nothing still owed is removed or anonymised, and every referral is
delivered exactly once."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import defaultdict

import pytest
from django.db import connection
from django.utils import timezone

from deliveries.models import Attempt, DeliveryItem
from privacy.runs import retention_purge
from referrals.models import Client, Referral
from referrals.services import referrals_ingest
from tests.factories import make_api_delivery, make_client, referral_record
from tests.processes import wait_for
from tests.test_api_delivery_processes import cluster  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _expired_world(client, delivery, count: int) -> None:
    """``count`` referrals delivered ten days ago, each with its attempt."""
    outcomes = referrals_ingest(records=[referral_record(client) for _ in range(count)])
    items = DeliveryItem.objects.filter(referral_id__in=[o.id for o in outcomes])
    long_ago = timezone.now() - dt.timedelta(days=10)
    items.update(status="delivered", delivered_at=long_ago, created_at=long_ago)
    Attempt.objects.bulk_create(
        Attempt(delivery=delivery, item_id=pk, referral_id=referral, started_at=long_ago,
                method="POST", url="https://crm.example.com", outcome="delivered")
        for pk, referral in items.values_list("pk", "referral_id")
    )  # fmt: skip


def test_a_purge_beside_a_worker_and_ingestion_removes_nothing_owed(
    cluster,  # noqa: F811
    http_receiver,
    settings,
):
    settings.RETENTION_DELIVERED_ITEMS_DAYS = 1
    settings.RETENTION_ATTEMPTS_DAYS = 1
    settings.RETENTION_BATCH_ENTRIES_DAYS = 1
    client = make_client("alpha")
    delivery = make_api_delivery(client, http_receiver.url())
    _expired_world(client, delivery, 150)
    # Every referral is past its time for a purge run two days on, the ones being stored and
    # sent included: only what is still owed keeps them.
    Client.objects.filter(pk=client.pk).update(retention_days=1)
    answers: dict[str, list[int]] = defaultdict(list)
    bodies: dict[str, bytes] = {}
    lock = threading.Lock()
    chance = random.Random(3)

    def respond(request):
        with lock:
            status = 500 if chance.random() < 0.3 else 200
            answers[request.header("webhook-id")].append(status)
            bodies[request.header("webhook-id")] = request.body
        return status, [], b"{}"

    http_receiver.respond = respond
    cluster.start_beat()
    cluster.start_worker()
    stored: list[str] = []

    def ingest_for_a_while() -> None:
        try:
            for _ in range(30):
                records = [referral_record(client) for _ in range(5)]
                outcomes = referrals_ingest(records=records)
                assert {o.status for o in outcomes} == {"created"}
                stored.extend(r["external_id"] for r in records)
                time.sleep(0.05)
        finally:
            connection.close()

    ingestion = threading.Thread(target=ingest_for_a_while)
    ingestion.start()
    runs = []
    while ingestion.is_alive() or len(runs) < 3:
        runs.append(retention_purge(now=timezone.now() + dt.timedelta(days=2), batch_size=20))
    ingestion.join()

    def accepted() -> bool:
        with lock:
            return sum(s.count(200) for s in answers.values()) >= len(stored)

    wait_for(accepted, timeout=120, what="every referral accepted", logs=cluster.logs)
    assert sum(run.removed["ledger_items"] for run in runs if run) >= 150
    with lock:
        # Each referral accepted exactly once, under its own id; none sent anonymised.
        odd = {k: v for k, v in answers.items() if v.count(200) != 1}
        extra = [json.loads(bodies[k])["external_id"] for k in odd]
        assert not odd, (extra[:5], stored[:3], stored[-3:], len(answers), len(stored))
        sent = [json.loads(body) for body in bodies.values()]
    assert sorted(body["external_id"] for body in sent) == sorted(stored)
    assert all("@" in body["email"] for body in sent)
    # Once delivered, nothing is owed: the next purge takes the rest.
    wait_for(lambda: not DeliveryItem.objects.exclude(status="delivered").exists(),
             timeout=60, what="every item settled", logs=cluster.logs)  # fmt: skip
    retention_purge(now=timezone.now() + dt.timedelta(days=2))
    assert not DeliveryItem.objects.exists() and not Attempt.objects.exists()
    assert not Referral.objects.filter(anonymised_at__isnull=True).exists()
