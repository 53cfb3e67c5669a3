"""How many requests one endpoint gets at once, across every worker: its budget.

A slow or dead endpoint may hold at most ``max_in_flight`` of the workers' threads; a send
that finds the budget spent does not wait for it (that is what stalls a shared queue behind
one slow endpoint), it gives its thread back and is tried again a moment later.

With Redis (production) the budget is a sorted set of tokens per delivery, each expiring on
its own, so a worker that dies holding one cannot leak it for longer than a request can last;
a token taken by a Celery worker is named after it (``deliveries.liveness``), so that once the
worker is known dead the tick gives its tokens back at once (``release_owned_by``). On the
embedded demo (no Redis, one machine) it is a semaphore per process.

A send that finds the budget spent leaves its items due in the database and says so
(``note_waiting``); whoever holds a token then looks for them before giving it back
(``keep_for_waiting``), so they go out as soon as a slot frees, not at the next tick.
"""

from __future__ import annotations

import threading
import time
import uuid
from functools import cache

from django.conf import settings

from deliveries.liveness import worker_tag

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], 3600)
  return 1
end
return 0
"""
# Kept (its expiry pushed on) if a send found the budget spent since: the holder goes on with
# what was left. Not if the token ran out meanwhile: it is no longer the holder's to keep.
_KEEP_FOR_WAITING = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('DEL', KEYS[2]) == 1 then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
"""
# Long enough for a holder to come by; a flag nobody consumed only costs one look.
_WAITING_SECONDS = 60
_WORKERS = "rokt:workers"


class Budget:
    def acquire(self, delivery_id: int, limit: int, hold_seconds: float) -> str | None:
        """A token if one of ``limit`` slots is free, else ``None``."""
        raise NotImplementedError

    def release(self, delivery_id: int, token: str) -> None:
        raise NotImplementedError

    def note_waiting(self, delivery_id: int) -> None:
        """A send found no slot and left its items due: the next holder is to look."""
        raise NotImplementedError

    def keep_for_waiting(self, delivery_id: int, token: str, hold_seconds: float) -> bool:
        """Keep ``token`` (for ``hold_seconds`` more) if a send found no slot since it was
        taken, and say so; else give it back."""
        raise NotImplementedError

    def free(self, delivery_id: int, limit: int) -> int:
        """How many of ``limit`` slots look free now (no token taken: a cheap check)."""
        raise NotImplementedError

    def release_owned_by(self, tags: set[str]) -> int:
        """Give back every token the workers ``tags`` (known dead) took; how many."""
        raise NotImplementedError

    def workers_seen(self) -> set[str]:
        """The workers seen alive by ``workers_note``, and not since noted gone."""
        raise NotImplementedError

    def workers_note(self, *, live: set[str], gone: set[str]) -> None:
        raise NotImplementedError


def _new_token() -> str:
    tag = worker_tag()
    return f"{tag}/{uuid.uuid4().hex}" if tag else uuid.uuid4().hex


def _owned_by(token: str, tags: set[str]) -> bool:
    return token.rpartition("/")[0] in tags


class RedisBudget(Budget):
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._keep_for_waiting = self._redis.register_script(_KEEP_FOR_WAITING)

    def acquire(self, delivery_id: int, limit: int, hold_seconds: float) -> str | None:
        now = time.time()
        token = _new_token()
        key = f"rokt:budget:{delivery_id}"
        granted = self._acquire(keys=[key], args=[now, limit, now + hold_seconds, token])
        return token if granted else None

    def release(self, delivery_id: int, token: str) -> None:
        self._redis.zrem(f"rokt:budget:{delivery_id}", token)

    def note_waiting(self, delivery_id: int) -> None:
        self._redis.set(f"rokt:budget:{delivery_id}:waiting", 1, ex=_WAITING_SECONDS)

    def keep_for_waiting(self, delivery_id: int, token: str, hold_seconds: float) -> bool:
        key = f"rokt:budget:{delivery_id}"
        kept = self._keep_for_waiting(keys=[key, f"{key}:waiting"],
                                      args=[token, time.time() + hold_seconds])  # fmt: skip
        return bool(kept)

    def free(self, delivery_id: int, limit: int) -> int:
        key = f"rokt:budget:{delivery_id}"
        return max(0, limit - self._redis.zcount(key, time.time(), "+inf"))

    def release_owned_by(self, tags: set[str]) -> int:
        # A look at every endpoint's budget: only when a worker died (rare), never per send.
        released = 0
        for key in self._redis.scan_iter(match="rokt:budget:*", _type="ZSET"):
            dead = [t for t in self._redis.zrange(key, 0, -1) if _owned_by(t.decode(), tags)]
            if dead:
                released += self._redis.zrem(key, *dead)
        return released

    def workers_seen(self) -> set[str]:
        return {tag.decode() for tag in self._redis.smembers(_WORKERS)}

    def workers_note(self, *, live: set[str], gone: set[str]) -> None:
        with self._redis.pipeline() as pipe:
            if live:
                pipe.sadd(_WORKERS, *live)
            if gone:
                pipe.srem(_WORKERS, *gone)
            pipe.execute()


class LocalBudget(Budget):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, set[str]] = {}
        self._waiting: set[int] = set()
        self._workers: set[str] = set()

    def acquire(self, delivery_id: int, limit: int, hold_seconds: float) -> str | None:
        token = _new_token()
        with self._lock:
            held = self._held.setdefault(delivery_id, set())
            if len(held) >= limit:
                return None
            held.add(token)
            return token

    def release(self, delivery_id: int, token: str) -> None:
        with self._lock:
            self._held.get(delivery_id, set()).discard(token)

    def note_waiting(self, delivery_id: int) -> None:
        with self._lock:
            self._waiting.add(delivery_id)

    def keep_for_waiting(self, delivery_id: int, token: str, hold_seconds: float) -> bool:
        with self._lock:
            held = self._held.get(delivery_id, set())
            if token in held and delivery_id in self._waiting:
                self._waiting.discard(delivery_id)
                return True
            held.discard(token)
            return False

    def free(self, delivery_id: int, limit: int) -> int:
        with self._lock:
            return max(0, limit - len(self._held.get(delivery_id, ())))

    def release_owned_by(self, tags: set[str]) -> int:
        with self._lock:
            dead = {t for held in self._held.values() for t in held if _owned_by(t, tags)}
            for held in self._held.values():
                held -= dead
            return len(dead)

    def workers_seen(self) -> set[str]:
        with self._lock:
            return set(self._workers)

    def workers_note(self, *, live: set[str], gone: set[str]) -> None:
        with self._lock:
            self._workers = (self._workers | live) - gone


@cache
def budget() -> Budget:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        return RedisBudget(url)
    return LocalBudget()
