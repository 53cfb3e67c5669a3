"""The Redis broker's channel keeps one client for every publish, delivery and ack (kombu
builds one per operation otherwise, each costing redis-py a 170-entry table)."""

from __future__ import annotations

from rokt_platform.broker import Transport
from rokt_platform.celery import app


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
