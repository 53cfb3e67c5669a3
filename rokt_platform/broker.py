"""kombu's Redis transport, with one Redis client per channel instead of one per operation.

kombu's Redis channel builds a new ``redis.Redis`` client for each publish, delivery and ack
(``conn_or_acquire``), and redis-py 8 fills a 170-entry case-insensitive table of response
callbacks in every new client (redis/redis-py#3624): a worker paid that twice per task, the
web process once per queued send. A client only borrows connections from the channel's pool,
one per command, so one client serves every thread.

Used for ``redis://`` brokers (``rokt_platform.celery``); ``rediss://`` keeps kombu's own.

A worker that consumes only queues whose messages merely hint at work the database holds
(``HINT_QUEUES``) runs without kombu's acknowledgement emulation (``hint_worker_options``).
"""

from __future__ import annotations

from collections.abc import Iterable
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


# Queues whose messages only say "look now" about work the database already holds: a real-time
# send's item is in the ledger (the tick sends an item whose message died with its worker at the
# first tick after, ``deliveries.liveness``; one lost otherwise, after a minute),
# and housekeeping runs on beat's schedule (a lost tick is the next one's work).
HINT_QUEUES = frozenset({"deliveries_api", "housekeeping"})


def hint_worker_options(queues: Iterable[str] | str | None) -> dict:
    """Broker transport options for a worker consuming ``queues``: without acknowledgement
    emulation when every one is a hint queue.

    kombu emulates AMQP's acks on Redis by copying each message into an "unacked" hash (and an
    index) when it is delivered and deleting it when acked: two pipelines a message, about a
    tenth of a real-time worker's CPU, to redeliver after ``visibility_timeout`` (an hour) a
    message its worker died holding. For hints the tick does that at its first run after the
    worker died (within a minute if the database cannot tell that it died), and a
    warm shutdown still puts back what the worker had reserved; for other queues (a file run,
    an export) it stays on. A worker consuming every queue (no ``--queues``) keeps it.
    """
    if not queues:
        return {}
    names = {q.strip() for q in (queues.split(",") if isinstance(queues, str) else queues)}
    return {"ack_emulation": False} if names and names <= HINT_QUEUES else {}
