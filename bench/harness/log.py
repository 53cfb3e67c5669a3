"""Progress lines on stdout, stamped with the seconds since the bench started."""

from __future__ import annotations

import time

_BEGAN = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _BEGAN:5.1f} s] {message}", flush=True)
