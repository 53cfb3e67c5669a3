"""What a long-running process does once it has started: its start-up objects (Django,
Celery, the modules and their caches: about 110,000 in a worker) are left out of the garbage
collector's full collections.

Each full collection walked all of them holding the GIL, ~40-70 ms on this project's machine,
every few seconds under load: every thread of a real-time worker stood still meanwhile, the
slowest of the sends' latencies (docs/PERFORMANCE.md). ``gc.freeze`` is meant for objects
that live as long as the process; what is made later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then freeze the rest; how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
