"""Each worker's copy of the deliveries it sends for, so a send does not load (and decrypt)
the whole delivery and its client from the database every time.

A copy is used while the delivery's ``updated_at`` is the one read with the item (every save
changes it) and for ``_TTL`` at most (its client or its custom fields may change without
touching it: such edits reach running workers within that). The columns that change between
saves (pause, health) always come from the row read with the item.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time

from deliveries.models import Delivery

_TTL = 10.0
_lock = threading.Lock()
_cache: dict[int, tuple[float, dt.datetime, Delivery]] = {}


def delivery_for_send(
    delivery_id: int,
    updated_at: dt.datetime,
    *,
    last_success_at: dt.datetime | None,
    failing_since: dt.datetime | None,
) -> Delivery:
    """The delivery as of ``updated_at``, with its live health columns; a copy of its own per
    send (health changes made by this send stay with it)."""
    with _lock:
        cached = _cache.get(delivery_id)
    if cached is None or cached[1] != updated_at or time.monotonic() - cached[0] > _TTL:
        loaded = Delivery.objects.select_related("client").get(pk=delivery_id)
        cached = (time.monotonic(), loaded.updated_at, loaded)
        with _lock:
            if len(_cache) > 1000:
                _cache.clear()
            _cache[delivery_id] = cached
    delivery = copy.copy(cached[2])
    delivery.last_success_at = last_success_at
    delivery.failing_since = failing_since
    return delivery
