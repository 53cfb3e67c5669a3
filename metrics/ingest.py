"""What only the ingesting web process sees, counted in that process: each record's outcome and
each request's time. ``referrals`` calls ``ingest_observe`` through its ingestion hook.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` (docs/METRICS.md): every worker process then
writes its counts to a file there, and any of them sums them all when scraped.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

STATUSES = ("created", "duplicate", "invalid")
# A collector's request holds one record (a few ms); a bulk load up to a thousand (seconds).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_REGISTRY = CollectorRegistry()
RECORDS = Counter(
    "rokt_ingest_records",
    "Records received by the ingestion API, by outcome (this web host's processes).",
    ["result"],
    registry=_REGISTRY,
)
SECONDS = Histogram(
    "rokt_ingest_request_seconds",
    "Time to validate and store one ingestion request's records (this web host's processes).",
    buckets=SECONDS_BUCKETS,
    registry=_REGISTRY,
)
for _status in STATUSES:
    RECORDS.labels(result=_status)  # every outcome is a series from the start, at 0


def ingest_observe(statuses: Sequence[str], seconds: float) -> None:
    for status, count in Tally(statuses).items():
        RECORDS.labels(result=status).inc(count)
    SECONDS.observe(seconds)


def process_registry() -> CollectorRegistry:
    """This host's in-process metrics: summed over the processes that share
    ``PROMETHEUS_MULTIPROC_DIR`` if it is set, else this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry
    return _REGISTRY
