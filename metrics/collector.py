"""The platform's figures across deliveries, read from PostgreSQL when /metrics is scraped (the
per-delivery ones: ``metrics.per_delivery``).

Any web process on any host answers the same (nothing is kept in a process), and what the
workers do needs no scraping of the workers: every attempt, batch and export is a row already.
Each query is bounded (docs/METRICS.md, "Cost"): attempts by the index ``attempt_started``,
batches by ``batch_finished``; exports are a small table (one row per export a person asked
for).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deliveries.models import Attempt, Batch
from deliveries.selectors import worker_heartbeat_age_seconds
from metrics.models import BeatTick
from referrals.models import ExportAudit

SEND_MS_BUCKETS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BATCH_SECONDS_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)
BATCH_BYTES_BUCKETS = (10**4, 10**5, 10**6, 10**7, 10**8, 10**9)


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        window = settings.METRICS_WINDOW_SECONDS
        since = now - dt.timedelta(seconds=window)
        yield _send_latency(since)
        yield from _batches(since)
        yield from _exports(since)
        yield from _liveness(now)
        yield _gauge(
            "rokt_metrics_window_seconds", "What the *_recent figures cover, in seconds.", window
        )


def _send_latency(since: dt.datetime) -> Metric:
    """Real-time attempts started in the window (``attempt_started``), test sends aside."""
    buckets = {f"le{ms}": Count("pk", filter=Q(latency_ms__lte=ms)) for ms in SEND_MS_BUCKETS}
    row = Attempt.objects.filter(
        started_at__gte=since, test=False, latency_ms__isnull=False
    ).aggregate(timed=Count("pk"), ms=Sum("latency_ms"), **buckets)
    return _histogram(
        "rokt_delivery_send_seconds_recent",
        "Latency of the real-time attempts started in the window (all deliveries).",
        [ms / 1000 for ms in SEND_MS_BUCKETS],
        [row[name] for name in buckets],
        row["timed"],
        (row["ms"] or 0.0) / 1000,
    )


def _batches(since: dt.datetime) -> Iterator[Metric]:
    """File batches finished in the window: few rows, read whole (``batch_finished``)."""
    rows = list(
        Batch.objects.filter(finished_at__gte=since).values_list(
            "status", "started_at", "finished_at", "bytes"
        )
    )
    by_status = GaugeMetricFamily(
        "rokt_batches_recent",
        "File batches finished in the window, by status.",
        labels=["status"],
    )
    for status in sorted({row[0] for row in rows}):
        by_status.add_metric([status], sum(1 for row in rows if row[0] == status))
    yield by_status
    sent = [row for row in rows if row[0] == Batch.Status.SENT]
    seconds = [(end - start).total_seconds() for _, start, end, _ in sent if start and end]
    sizes = [size for *_, size in sent if size is not None]
    yield _histogram_of(
        "rokt_batch_duration_seconds_recent",
        "Time to write and upload the batches sent in the window.",
        BATCH_SECONDS_BUCKETS,
        seconds,
    )
    yield _histogram_of(
        "rokt_batch_bytes_recent",
        "Size of the batches sent in the window.",
        BATCH_BYTES_BUCKETS,
        sizes,
    )


def _exports(since: dt.datetime) -> Iterator[Metric]:
    rows = (
        ExportAudit.objects.filter(started_at__gte=since)
        .values_list("format", "status")
        .annotate(n=Count("pk"), rows=Sum("rows"))
        .order_by("format", "status")
    )
    exports = GaugeMetricFamily(
        "rokt_exports_recent",
        "Referral exports started in the window, by format and state.",
        labels=["format", "status"],
    )
    exported = GaugeMetricFamily(
        "rokt_export_rows_recent",
        "Rows written by the exports started in the window.",
        labels=["format", "status"],
    )
    for file_format, status, n, row_count in rows:
        exports.add_metric([file_format, status], n)
        exported.add_metric([file_format, status], row_count or 0)
    yield from (exports, exported)


def _liveness(now: dt.datetime) -> Iterator[Metric]:
    """Absent until a worker first beat (or beat first ticked): alert on absence too."""
    heartbeat = worker_heartbeat_age_seconds()
    if heartbeat is not None:
        yield _gauge(
            "rokt_worker_heartbeat_age_seconds",
            "Seconds since a Celery worker last ran the heartbeat beat sends each minute.",
            heartbeat,
        )
    tick = BeatTick.objects.filter(pk=1).values_list("ticked_at", flat=True).first()
    if tick is not None:
        yield _gauge(
            "rokt_beat_tick_age_seconds",
            "Seconds since beat last sent a scheduled task (recorded every 10 s at most).",
            (now - tick).total_seconds(),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _histogram(
    name: str,
    documentation: str,
    bounds: Iterable[float],
    cumulative: list[int],
    count: int,
    total: float,
) -> GaugeHistogramMetricFamily:
    """A histogram of what the window holds: its buckets may go down (a gauge histogram)."""
    buckets = [(_le(bound), n) for bound, n in zip(bounds, cumulative, strict=True)]
    return GaugeHistogramMetricFamily(
        name, documentation, buckets=[*buckets, ("+Inf", count)], gsum_value=total
    )


def _histogram_of(
    name: str, documentation: str, bounds: tuple, values: list[float]
) -> GaugeHistogramMetricFamily:
    cumulative = [sum(1 for value in values if value <= bound) for bound in bounds]
    return _histogram(name, documentation, bounds, cumulative, len(values), sum(values))


def _le(bound: float) -> str:
    return repr(float(bound))
