"""The Redis broker: a channel keeps one client for every publish, delivery and ack (kombu
builds one per operation otherwise, each costing redis-py a 170-entry table); a worker of hint
queues only keeps no acknowledgement bookkeeping in Redis."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from deliveries.models import DeliveryItem
from referrals.services import referrals_ingest
from rokt_platform.broker import Transport, hint_worker_options
from rokt_platform.celery import app
from tests.factories import make_api_delivery, make_client, referral_record
from tests.processes import Cluster, wait_for


def test_a_redis_broker_channel_reuses_one_client(settings):
    with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
        assert connection.transport_cls == "rokt_platform.broker:Transport"
        assert isinstance(connection.transport, Transport)
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            first.set("rokt:broker-probe", "1", ex=5)
            assert second.get("rokt:broker-probe") == b"1"
        own = object()
        with channel.conn_or_acquire(own) as given:  # a client handed in is used as it is
            assert given is own


def test_only_a_worker_of_hint_queues_drops_ack_emulation():
    assert hint_worker_options(["deliveries_api", "housekeeping"]) == {"ack_emulation": False}
    assert hint_worker_options("deliveries_api") == {"ack_emulation": False}
    # A queue whose message is the only record of its work keeps kombu's redelivery.
    assert hint_worker_options("deliveries_api,deliveries_files") == {}
    assert hint_worker_options(["exports"]) == {}
    assert hint_worker_options(None) == {}  # every queue


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize(
    ("queues", "bookkept"),
    [("deliveries_api,housekeeping", False), ("default,deliveries_api,housekeeping", True)],
)
def test_a_real_time_worker_keeps_no_unacked_copies_yet_delivers_everything(
    queues, bookkept, transactional_db, tmp_path, settings, http_receiver
):
    """One thread, a receiver taking 1.5 s: while the first send is out, the worker holds
    the next message reserved. kombu's emulation copies it into Redis's ``unacked`` hash; a
    worker of hint queues only does not (the ledger holds the item), and still sends all."""
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    app.control.purge()
    redis = Redis.from_url(settings.CELERY_BROKER_URL)
    redis.delete("unacked", "unacked_index")
    client = make_client("alpha")
    delivery = make_api_delivery(client, http_receiver.url())
    http_receiver.slow(1.5)
    cluster = Cluster(
        tmp_path, queues=queues, worker_args=("--pool", "threads", "--concurrency", "1"),
        env={"DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8"},
    )  # fmt: skip
    try:
        cluster.start_worker()
        cluster.wait_ready()
        for _ in range(3):  # three commits: three messages of one item each
            assert referrals_ingest(records=[referral_record(client)])[0].status == "created"
        wait_for(lambda: len(http_receiver.requests) >= 1, timeout=30, what="the first send",
                 logs=cluster.logs)  # fmt: skip
        time.sleep(0.5)  # the worker takes the next message while the first send is out
        assert (redis.hlen("unacked") > 0) is bookkept
        wait_for(
            lambda: DeliveryItem.objects.filter(delivery=delivery, status="delivered").count() == 3,
            timeout=30, what="the three referrals delivered", logs=cluster.logs,
        )  # fmt: skip
        assert len(http_receiver.requests) == 3
    finally:
        cluster.stop()
