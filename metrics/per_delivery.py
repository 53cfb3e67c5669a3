"""The per-delivery figures of /metrics, written in Prometheus' text format (0.0.4) here.

A thousand deliveries make some 5,000 series: prometheus_client's ``generate_latest`` escapes
and formats every label of every sample on its own (most of a scrape's time, measured in
``bench/metrics.py``), where here each delivery's labels are written once and reused. The
other figures go through prometheus_client (``metrics.collector``); the tests read the whole
answer with its parser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Count

from deliveries.models import Attempt, Delivery
from metrics.backlog import backlog_for_scrape

FAMILIES = {
    "rokt_delivery_pending_items":
        "Referrals the delivery owes: not yet in a file, or not yet answered.",
    "rokt_delivery_oldest_pending_seconds":
        "Age of the oldest referral the delivery owes (0 when it owes none).",
    "rokt_delivery_paused": "1 while an account manager has paused it.",
    "rokt_delivery_failing":
        "1 while its last run or send failed (the admin's 'failing since').",
    "rokt_delivery_attempts_recent":
        "Real-time send attempts started in the last rokt_metrics_window_seconds, by outcome.",
    "rokt_delivery_backlog_age_seconds":
        "How long ago the pending items and their oldest were counted.",
}  # fmt: skip


def per_delivery_exposition(now: dt.datetime, since: dt.datetime) -> str:
    """One series per active delivery for each state; attempts where there were some."""
    deliveries = (
        Delivery.objects.filter(active=True)
        .values_list("pk", "client__slug", "kind", "paused_at", "failing_since")
        .order_by("pk")
    )
    owed, counted_ago = backlog_for_scrape(now)
    # The window's attempts (``attempt_started``), test sends aside.
    attempts = (
        Attempt.objects.filter(started_at__gte=since, test=False)
        .values_list("delivery", "outcome")
        .annotate(n=Count("*"))
        .order_by("delivery", "outcome")
    )
    lines: dict[str, list[str]] = {name: [] for name in FAMILIES}
    labels: dict[int, str] = {}
    for pk, client, kind, paused_at, failing_since in deliveries:
        labels[pk] = label = f'delivery="{pk}",client="{_escape(client)}",kind="{_escape(kind)}"'
        count, first = owed.get(pk, (0, None))
        age = max(0.0, now.timestamp() - first) if first is not None else 0.0
        lines["rokt_delivery_pending_items"].append(f"{{{label}}} {count}")
        lines["rokt_delivery_oldest_pending_seconds"].append(f"{{{label}}} {age:.3f}")
        lines["rokt_delivery_paused"].append(f"{{{label}}} {int(paused_at is not None)}")
        lines["rokt_delivery_failing"].append(f"{{{label}}} {int(failing_since is not None)}")
    for delivery, outcome, count in attempts:
        if delivery in labels:  # an inactive delivery's last attempts are left out
            label = f'{labels[delivery]},outcome="{_escape(outcome)}"'
            lines["rokt_delivery_attempts_recent"].append(f"{{{label}}} {count}")
    lines["rokt_delivery_backlog_age_seconds"].append(f" {counted_ago:.3f}")
    return "".join(_family(name, samples) for name, samples in lines.items())


def _family(name: str, samples: Iterable[str]) -> str:
    body = "".join(f"{name}{sample}\n" for sample in samples)
    return f"# HELP {name} {FAMILIES[name]}\n# TYPE {name} gauge\n{body}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
