"""Real-time delivery through a real worker (threads pool) and beat on the real Redis: a
receiver that fails half the time, a worker SIGKILLed mid-burst, and one slow endpoint that
must not hold up another."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter, defaultdict

import pytest
import redis
from django.conf import settings

from deliveries.models import Attempt, DeliveryItem
from referrals.services import referrals_ingest
from rokt_platform.celery import app
from tests.factories import make_api_delivery, make_client, referral_record
from tests.processes import Cluster, stop, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _state() -> list[str]:
    counts = Counter(DeliveryItem.objects.values_list("delivery_id", "status"))
    return [f"delivery {d} {s}: {n}" for (d, s), n in sorted(counts.items())]


@pytest.fixture
def cluster(transactional_db, tmp_path, settings):
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    app.control.purge()
    # Retry delays at the smallest scale the setting takes: a referral the receiver refuses
    # ten times running (seeded: one does) is retried at each tick, not after 19 s and 38 s.
    running = Cluster(
        tmp_path, queues="deliveries_api,housekeeping",
        worker_args=("--pool", "threads", "--concurrency", "16"), state=_state,
        env={"DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8", "DELIVERY_API_TICK_SECONDS": "1",
             "DELIVERY_RETRY_SCALE": "0.0001"},
    )  # fmt: skip
    yield running
    running.stop()


def ingest(client, count: int) -> list[int]:
    outcomes = referrals_ingest(records=[referral_record(client) for _ in range(count)])
    assert {o.status for o in outcomes} == {"created"}
    return [o.id for o in outcomes]


def delivered(delivery) -> bool:
    return not DeliveryItem.objects.filter(delivery=delivery).exclude(status="delivered").exists()


def test_a_receiver_failing_half_the_time_gets_every_referral(cluster, http_receiver):
    client = make_client("alpha")
    delivery = make_api_delivery(client, http_receiver.url())
    answers: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    chance = random.Random(7)

    def respond(request):
        with lock:
            status = 500 if chance.random() < 0.5 else 200
            answers[request.header("webhook-id")].append(status)
        return status, [], b"{}"

    http_receiver.respond = respond
    cluster.start_beat()
    cluster.start_worker()
    ids = ingest(client, 40)
    wait_for(lambda: delivered(delivery), timeout=120, what="every referral delivered",
             logs=cluster.logs)  # fmt: skip
    items = DeliveryItem.objects.filter(delivery=delivery)
    assert sorted(items.values_list("referral_id", flat=True)) == sorted(ids)
    expected_ids = {f"msg_{pk}" for pk in items.values_list("pk", flat=True)}
    assert set(answers) == expected_ids  # nothing but these, each with its own id
    # Each referral was accepted exactly once; every other request was a retry of a failure.
    assert all(statuses.count(200) == 1 and statuses[-1] == 200 for statuses in answers.values())
    assert sum(len(s) for s in answers.values()) > len(ids)  # retries really happened


def test_a_worker_killed_mid_burst_loses_nothing(cluster, http_receiver):
    client = make_client("alpha")
    delivery = make_api_delivery(client, http_receiver.url(), connect_timeout=1,
                                 total_timeout=2)  # fmt: skip
    http_receiver.slow(0.05)
    cluster.start_beat()
    cluster.start_worker()
    ids = ingest(client, 200)
    wait_for(lambda: len(http_receiver.requests) >= 30, timeout=60,
             what="the burst to be under way", logs=cluster.logs)  # fmt: skip
    stop(cluster.worker, signal.SIGKILL)
    assert not delivered(delivery)
    cluster.start_worker()
    wait_for(lambda: delivered(delivery), timeout=120, what="every referral delivered",
             logs=cluster.logs)  # fmt: skip
    per_id = Counter(r.header("webhook-id") for r in http_receiver.requests)
    items = DeliveryItem.objects.filter(delivery=delivery)
    assert set(per_id) == {f"msg_{pk}" for pk in items.values_list("pk", flat=True)}
    assert len(per_id) == len(ids)
    # A request cut by the kill may be repeated, always under its own webhook-id.
    assert sum(per_id.values()) - len(ids) <= 16


def _other_sessions() -> set[int]:
    """Sessions on the test database other than this connection (the workers', and those of
    this process's other threads: a live server's, kept for the whole test session)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_what_a_killed_worker_held_is_taken_back_at_the_next_tick(cluster, http_receiver):
    """A worker SIGKILLed mid-request leaves claimed items, budget tokens and prefetched
    messages: the first tick after its death frees them all (not when the claims' lease ends,
    half a minute later, nor the minute after which a message counts as lost), and a
    replacement then delivers every referral, none sent twice at once."""
    from deliveries.api_dispatch import api_items_queue_due
    from deliveries.budget import budget

    client = make_client("alpha")
    # A 36 s lease (5 s chunk + 1 s connect + 25 s total + 5 s): far beyond this test's waits.
    delivery = make_api_delivery(client, http_receiver.url(), connect_timeout=1,
                                 total_timeout=25)  # fmt: skip
    http_receiver.slow(30)  # every request hangs: the worker is killed in the middle of some
    cluster.worker_args = ("--pool", "threads", "--concurrency", "2")
    before_the_worker = _other_sessions()
    cluster.start_worker()
    cluster.wait_ready()
    ids = [pk for _ in range(12) for pk in ingest(client, 1)]  # a message each
    wait_for(lambda: len(http_receiver.requests) >= 2, timeout=30,
             what="both threads in a request", logs=cluster.logs)  # fmt: skip
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    wait_for(lambda: broker.llen("deliveries_api") <= 8, timeout=30,
             what="the worker to prefetch two messages", logs=cluster.logs)  # fmt: skip
    stop(cluster.worker, signal.SIGKILL)
    killed_at = time.monotonic()
    in_flight = {r.header("webhook-id") for r in http_receiver.requests}
    wait_for(lambda: _other_sessions() <= before_the_worker, timeout=30,
             what="the database to see it dead",
             logs=cluster.logs)  # fmt: skip

    api_items_queue_due()  # the tick, once

    items = DeliveryItem.objects.filter(delivery=delivery)
    assert not items.filter(status="sending").exists(), _state()  # its claims, taken back
    assert not items.filter(next_attempt_at__isnull=True).exists(), _state()  # its messages
    assert budget().free(delivery.pk, delivery.max_in_flight) == delivery.max_in_flight
    http_receiver.respond = lambda request: (200, [], b"{}")
    cluster.start_beat()
    cluster.start_worker()
    wait_for(lambda: delivered(delivery), timeout=60, what="every referral delivered",
             logs=cluster.logs)  # fmt: skip
    by_id = defaultdict(list)
    for request in http_receiver.requests:
        by_id[request.header("webhook-id")].append(request.received_at)
    assert set(by_id) == {f"msg_{pk}" for pk in items.values_list("pk", flat=True)}
    assert len(by_id) == len(ids)
    # Sent once; twice only if the kill cut its request, and then again only after the kill.
    assert all(len(times) == 1 or (name in in_flight and len(times) == 2
                                   and times[1] > killed_at)
               for name, times in by_id.items()), by_id  # fmt: skip
    attempts = Counter(Attempt.objects.filter(delivery=delivery).values_list("outcome", flat=True))
    assert attempts == {"delivered": len(ids)}  # the cut requests were never recorded


def test_a_slow_endpoint_does_not_hold_up_another(cluster, http_receiver):
    from tests.servers.http_receiver import HttpReceiver

    slow_receiver = HttpReceiver()
    try:
        slow_receiver.slow(2.0)
        client = make_client("alpha")
        slow = make_api_delivery(client, slow_receiver.url(), max_in_flight=4)
        fast = make_api_delivery(make_client("bravo"), http_receiver.url())
        # 8 threads: the slow endpoint's traffic alone would need 20 (10/s for 2 s each).
        cluster.worker_args = ("--pool", "threads", "--concurrency", "8")
        cluster.start_beat()
        cluster.start_worker()
        cluster.wait_ready()  # latency counts from here, not from the worker's start-up
        bravo = fast.client
        sent_at: dict[int, float] = {}
        # 6 s of traffic at 20/s, half of it to the slow endpoint: five times what its budget
        # of 4 requests per 2 s can carry, and more than all the worker's threads could.
        for _ in range(15):
            ingest(client, 4)
            for pk in ingest(bravo, 4):
                sent_at[pk] = time.monotonic()
            time.sleep(0.4)
        wait_for(lambda: delivered(fast), timeout=60, what="the fast endpoint's referrals",
                 logs=cluster.logs)  # fmt: skip
        arrival = {}
        by_msg = {f"msg_{i.pk}": i.referral_id for i in DeliveryItem.objects.filter(delivery=fast)}
        for request in http_receiver.requests:
            arrival.setdefault(by_msg[request.header("webhook-id")], request.received_at)
        delays = sorted(arrival[pk] - sent_at[pk] for pk in sent_at)
        assert delays[-1] < 3.0, f"slowest fast referral took {delays[-1]:.2f}s"
        # ...and the slow endpoint gets everything in the end.
        wait_for(lambda: delivered(slow), timeout=120, what="the slow endpoint's referrals",
                 logs=cluster.logs)  # fmt: skip
    finally:
        slow_receiver.close()


def test_a_setting_no_send_can_use_pauses_at_once_and_the_fix_delivers_each_once(
    cluster, http_receiver
):
    from django.utils import timezone

    from deliveries.models import Attempt, Delivery
    from deliveries.pausing import delivery_resume

    client = make_client("alpha")
    delivery = make_api_delivery(client, http_receiver.url())
    usable = delivery.columns
    # Stored unchecked (saves refuse it): a column naming a custom field that is not there.
    broken = Delivery.objects.filter(pk=delivery.pk)
    broken.update(columns=[{"source": "Nickname", "output": "Nick"}], updated_at=timezone.now())
    cluster.start_beat()
    cluster.start_worker()
    ids = ingest(client, 20)
    # The worker pauses, then warns, in two statements: wait for both.
    wait_for(lambda: broken.filter(paused_at__isnull=False, warned_at__isnull=False).exists(),
             timeout=60, what="the delivery paused and the warning out",
             logs=cluster.logs)  # fmt: skip
    delivery.refresh_from_db()
    assert "the column list: 'Nickname' is neither" in delivery.paused_reason
    assert delivery.warned_at is not None  # account managers told at once
    attempts = Attempt.objects.filter(delivery=delivery)
    assert attempts.exists() and set(attempts.values_list("error_class", flat=True)) == {
        "configuration"
    }
    assert http_receiver.requests == []
    # Owed, not lost: every item still open while paused (the ticks go on meanwhile).
    time.sleep(3)
    open_items = DeliveryItem.objects.filter(delivery=delivery, status__in=["pending", "failed"])
    assert open_items.count() == len(ids)

    broken.update(columns=usable, updated_at=timezone.now())
    delivery_resume(delivery)
    wait_for(lambda: delivered(delivery), timeout=60, what="every referral delivered",
             logs=cluster.logs)  # fmt: skip
    per_id = Counter(r.header("webhook-id") for r in http_receiver.requests)
    items = DeliveryItem.objects.filter(delivery=delivery)
    assert per_id == Counter({f"msg_{pk}": 1 for pk in items.values_list("pk", flat=True)})
