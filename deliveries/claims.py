"""A run's claim on its delivery: no two runs of one delivery at once, on any machine
(``rokt_platform.claims``: released by the database or the operating system when the process
dies)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rokt_platform.claims import claim

# Advisory locks take two 32-bit keys: this namespace, and the delivery's id.
_NAMESPACE = 0x524F4B54  # "ROKT"


@contextmanager
def delivery_claim(delivery_id: int) -> Iterator[bool]:
    """Yield True if this process now holds ``delivery_id``'s claim, False if another does."""
    with claim(_NAMESPACE, delivery_id, f"delivery-{delivery_id}") as held:
        yield held
