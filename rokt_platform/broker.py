"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel builds a new ``redis.Redis`` client for each publish, delivery and ack
(``conn_or_acquire``), and redis-py 8 fills a 170-entry case-insensitive table of response
callbacks in every new client (redis/redis-py#3624): a worker paid that twice per task, the
web process once per queued send. A client only borrows connections from the channel's pool,
one per command, so one client serves every thread.

Used for ``redis://`` brokers (``rokt_platform.celery``); ``rediss://`` keeps kombu's own.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property

from kombu.transport import redis


class Channel(redis.Channel):
    @cached_property
    def _shared_client(self):
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client=None):
        yield client or self._shared_client


class Transport(redis.Transport):
    Channel = Channel
