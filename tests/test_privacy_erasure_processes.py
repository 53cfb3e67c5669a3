"""Erasure against a real worker and beat on the real Redis: a send whose request is in flight
when the erasure commits, and sends still queued in the broker when it commits. After the
commit nothing about the person is sent, recorded or recreated, and the worker goes on."""

from __future__ import annotations

import threading

import pytest

from deliveries.models import Attempt, DeliveryItem
from privacy.erasure import Person, erasure_run
from referrals.models import Referral
from referrals.roles import account_manager_create
from rokt_platform.celery import app
from tests.factories import make_api_delivery, make_client, make_referral
from tests.processes import Cluster, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PERSON = "ada@example.com"


def _state() -> list[str]:
    return [
        f"item {pk}: {status}" for pk, status in DeliveryItem.objects.values_list("pk", "status")
    ]


@pytest.fixture
def cluster(transactional_db, tmp_path, settings):
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    app.control.purge()
    running = Cluster(
        tmp_path, queues="deliveries_api,housekeeping",
        worker_args=("--pool", "threads", "--concurrency", "4"), state=_state,
        env={"DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8", "DELIVERY_API_TICK_SECONDS": "1",
             "DELIVERY_RETRY_SCALE": "0.0001"},
    )  # fmt: skip
    yield running
    running.stop()


def _delivered(referral: Referral) -> bool:
    return DeliveryItem.objects.filter(referral=referral, status="delivered").exists()


def _for_person(receiver) -> list:
    return [r for r in receiver.requests if PERSON.encode() in r.body]


def test_a_send_in_flight_when_the_erasure_commits_records_nothing_and_is_not_retried(
    cluster, http_receiver
):
    client = make_client("alpha")
    manager = account_manager_create(username="manager", password="x" * 20)
    make_api_delivery(client, http_receiver.url(), connect_timeout=2, total_timeout=30)
    arrived, release = threading.Event(), threading.Event()

    def respond(request):
        if PERSON.encode() in request.body:
            arrived.set()
            release.wait(25)
            return 500, [], b'{"error": "try again"}'  # a failure: would be retried
        return 200, [], b"{}"

    http_receiver.respond = respond
    cluster.start_beat()
    cluster.start_worker()
    person = make_referral(client, email=PERSON)
    wait_for(arrived.is_set, timeout=60, what="the person's request in flight",
             logs=cluster.logs)  # fmt: skip

    receipt = erasure_run(Person.by_email(PERSON), user=manager, source="api")
    release.set()
    # Later sends go on: the worker neither crashed nor stalled on the missing item; by the
    # time they are delivered, beat's ticks have passed over the failure it answered.
    later = [make_referral(client) for _ in range(3)]
    wait_for(lambda: all(_delivered(r) for r in later), timeout=60,
             what="later referrals delivered", logs=cluster.logs)  # fmt: skip
    wait_for(lambda: Attempt.objects.filter(referral_id__in=[r.pk for r in later]).count() == 3,
             timeout=30, what="their attempts", logs=cluster.logs)  # fmt: skip

    assert (receipt.referrals, receipt.ledger_items) == (1, 1)
    assert len(_for_person(http_receiver)) == 1  # the one in flight, never again
    assert not Attempt.objects.filter(referral_id=person.pk).exists()
    assert not DeliveryItem.objects.filter(referral_id=person.pk).exists()
    assert not Referral.objects.filter(pk=person.pk).exists()
    assert "Traceback" not in (cluster.tmp_path / "worker-1.log").read_text()


def test_sends_queued_in_the_broker_are_never_made_after_the_erasure(cluster, http_receiver):
    client = make_client("alpha")
    manager = account_manager_create(username="manager", password="x" * 20)
    make_api_delivery(client, http_receiver.url())
    # Stored while no worker runs: each send waits in Redis as a message.
    people = [make_referral(client, email=PERSON) for _ in range(2)]
    others = [make_referral(client) for _ in range(2)]

    receipt = erasure_run(Person.by_email(PERSON), user=manager, source="api")
    cluster.start_beat()
    cluster.start_worker()
    wait_for(lambda: all(_delivered(r) for r in others), timeout=60,
             what="the others delivered", logs=cluster.logs)  # fmt: skip
    later = make_referral(client)  # a send queued after the erasure, through the same worker
    wait_for(lambda: _delivered(later), timeout=60, what="a later referral delivered",
             logs=cluster.logs)  # fmt: skip

    assert receipt.referrals == 2 and receipt.ledger_items == 2
    assert _for_person(http_receiver) == []
    assert not Attempt.objects.filter(referral_id__in=[p.pk for p in people]).exists()
    assert len(http_receiver.requests) == 3
