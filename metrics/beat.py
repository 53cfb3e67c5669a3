"""Beat records that it is alive: when it sends a scheduled task, at most every few seconds.

Nothing else records beat's ticks (the worker heartbeat needs a worker as well). The write is
one UPDATE (an INSERT the first time) from the beat process, throttled so a tick every two
seconds costs one statement per ``_EVERY`` seconds.
"""

from __future__ import annotations

import logging
import time

from celery.signals import before_task_publish
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

_EVERY = 10.0  # seconds between two writes; the metric's resolution
_last: list[float] = []  # monotonic time of this process's last write


def beat_tick_enable(sender=None, **kwargs) -> None:
    """On ``beat_init``: from now on, this process (beat) records its ticks."""
    before_task_publish.connect(_on_publish, weak=False, dispatch_uid="metrics.beat_tick")


def _on_publish(sender=None, **kwargs) -> None:
    now = time.monotonic()
    if _last and now - _last[-1] < _EVERY:
        return
    _last[:] = [now]  # a failure too waits its turn: one log line per ``_EVERY`` at most
    try:
        # Beat lives for weeks and runs no request cycle: drop a connection that broke (a
        # database restart) or aged, as Django does around each request; never one inside
        # a transaction (a caller's, or a test's).
        if not connection.in_atomic_block:
            close_old_connections()
        beat_tick_record()
    except Exception:  # a metric must never stop beat from sending
        logger.exception("could not record beat's tick")


def beat_tick_record() -> None:
    from metrics.models import BeatTick

    BeatTick.objects.update_or_create(pk=1, defaults={"ticked_at": timezone.now()})
