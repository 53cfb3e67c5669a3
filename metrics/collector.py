"""The platform's state, read from PostgreSQL when /metrics is scraped.

Any web process on any host answers the same (nothing is kept in a process), and what the
workers do needs no scraping of the workers: every attempt, batch and export is a row already.
Each query is bounded by an index (docs/METRICS.md, "Cost"): the backlog by
``item_owed_age``, attempts by ``attempt_recent``, batches by ``batch_finished``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from deliveries.models import Attempt, Batch, Delivery, DeliveryItem
from deliveries.selectors import worker_heartbeat_age_seconds
from metrics.models import BeatTick
from referrals.models import ExportAudit

OWED = ("file", "pending", "sending", "failed")  # what a delivery still owes (selectors.OWED)
DELIVERY_LABELS = ["delivery", "client", "kind"]
SEND_MS_BUCKETS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BATCH_SECONDS_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)
BATCH_BYTES_BUCKETS = (10**4, 10**5, 10**6, 10**7, 10**8, 10**9)


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        window = settings.METRICS_WINDOW_SECONDS
        since = now - dt.timedelta(seconds=window)
        labels = yield from _deliveries(now)
        yield from _attempts(since, labels)
        yield from _batches(since)
        yield from _exports(since)
        yield from _liveness(now)
        yield _gauge(
            "rokt_metrics_window_seconds", "What the *_recent figures cover, in seconds.", window
        )


def _deliveries(now: dt.datetime) -> Iterator[Metric]:
    """One series each per active delivery. Returns each delivery's labels, by id."""
    owed = DeliveryItem.objects.filter(delivery=OuterRef("pk"), status__in=OWED).order_by()
    rows = (
        Delivery.objects.filter(active=True)
        .annotate(
            owed=Subquery(owed.values("delivery").annotate(n=Count("*")).values("n")),
            oldest=Subquery(owed.order_by("created_at").values("created_at")[:1]),
        )
        .values_list("pk", "client__slug", "kind", "paused_at", "failing_since", "owed", "oldest")
        .order_by("pk")
    )
    pending = _family(
        "rokt_delivery_pending_items",
        "Referrals the delivery owes: not yet in a file, or not yet answered.",
    )
    oldest = _family(
        "rokt_delivery_oldest_pending_seconds",
        "Age of the oldest referral the delivery owes (0 when it owes none).",
    )
    paused = _family("rokt_delivery_paused", "1 while an account manager has paused it.")
    failing = _family(
        "rokt_delivery_failing",
        "1 while its last run or send failed (the admin's 'failing since').",
    )
    labels: dict[int, list[str]] = {}
    for pk, client, kind, paused_at, failing_since, count, first in rows:
        labels[pk] = values = [str(pk), client, kind]
        pending.add_metric(values, count or 0)
        oldest.add_metric(values, (now - first).total_seconds() if first else 0.0)
        paused.add_metric(values, int(paused_at is not None))
        failing.add_metric(values, int(failing_since is not None))
    yield from (pending, oldest, paused, failing)
    return labels


def _attempts(since: dt.datetime, labels: dict[int, list[str]]) -> Iterator[Metric]:
    """Real-time attempts started in the window (test sends aside), through the (delivery,
    started_at) index: one range per active delivery."""
    buckets = {f"le{ms}": Count("pk", filter=Q(latency_ms__lte=ms)) for ms in SEND_MS_BUCKETS}
    rows = (
        Attempt.objects.filter(delivery__in=list(labels), started_at__gte=since, test=False)
        .values_list("delivery", "outcome")
        .annotate(n=Count("pk"), timed=Count("latency_ms"), ms=Sum("latency_ms"), **buckets)
        .order_by()
    )
    attempts = GaugeMetricFamily(
        "rokt_delivery_attempts_recent",
        "Real-time send attempts started in the last rokt_metrics_window_seconds, by outcome.",
        labels=[*DELIVERY_LABELS, "outcome"],
    )
    cumulative = [0] * len(SEND_MS_BUCKETS)
    timed = 0
    total_ms = 0.0
    for delivery, outcome, n, row_timed, ms, *row_buckets in rows:
        attempts.add_metric([*labels[delivery], outcome], n)
        cumulative = [a + b for a, b in zip(cumulative, row_buckets, strict=True)]
        timed += row_timed
        total_ms += ms or 0.0
    yield attempts
    yield _histogram(
        "rokt_delivery_send_seconds_recent",
        "Latency of the real-time attempts started in the window (all deliveries).",
        [ms / 1000 for ms in SEND_MS_BUCKETS],
        cumulative,
        timed,
        total_ms / 1000,
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


def _family(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=DELIVERY_LABELS)


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
