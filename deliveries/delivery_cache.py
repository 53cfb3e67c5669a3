"""Each worker's copy of the deliveries it sends for, so a send does not load (and decrypt)
the whole delivery and its client from the database every time.

A copy is used for ``_TTL`` at most (its client or its custom fields may change without
touching it: such edits reach running workers within that), and only while the delivery's
``updated_at`` is the one the send's claim read (every save changes it). The columns that
change between saves (pause, health) always come from the row the claim read.
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


def delivery_for_send(delivery_id: int, updated_at: dt.datetime | None = None) -> Delivery:
    """The delivery as of ``updated_at`` (any version of the last ``_TTL`` when ``None``); a
    copy of its own per send (health changes made by this send stay with it). Raises
    ``Delivery.DoesNotExist`` and ``SecretUnreadable`` as loading it does."""
    with _lock:
        cached = _cache.get(delivery_id)
    if (
        cached is None
        or (updated_at is not None and cached[1] != updated_at)
        or time.monotonic() - cached[0] > _TTL
    ):
        loaded = Delivery.objects.select_related("client").get(pk=delivery_id)
        cached = (time.monotonic(), loaded.updated_at, loaded)
        with _lock:
            if len(_cache) > 1000:
                _cache.clear()
            _cache[delivery_id] = cached
    return copy.copy(cached[2])
