"""What the admin's home page shows: a client user's own data, or every client's health.

Registered with the admin site by this app's ``AppConfig.ready()``: the home page reads
referrals, custom fields and deliveries, so it sits above them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from customfields.models import CustomField
from deliveries.selectors import delivered_per_day, deliveries_health, recent_batches
from referrals.models import Client, ExportAudit, Referral, ReferralDay
from referrals.selectors import Day, referrals_per_day
from referrals.tenancy import is_account_manager, user_client

# The chart's drawing box (SVG units; the page scales it to its column's width).
CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_LEFT, CHART_RIGHT = 900, 220, 10, 44, 10
TICKS = 4  # steps on the y axis


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    client = user_client(user)
    if client is not None:
        return {
            "home_client": client,
            "chart": _chart(referrals_per_day(client=client), delivered_per_day(client=client)),
            "custom_fields": CustomField.objects.filter(client=client).order_by("name"),
            "recent_exports": ExportAudit.objects.filter(user=user)[:5],
            "deliveries": deliveries_health(client=client),
            "recent_batches": recent_batches(client=client),
        }
    if is_account_manager(user) and user.has_perm("referrals.view_referral"):
        deliveries = deliveries_health()
        by_client: dict[int, list] = {}
        for delivery in deliveries:
            by_client.setdefault(delivery.client_id, []).append(delivery)
        return {
            "summaries": [
                {"summary": s, "deliveries": by_client.get(s.client.pk, [])}
                for s in client_summaries()
            ],
            "chart": _chart(referrals_per_day(client=None), delivered_per_day(client=None)),
            "deliveries": deliveries,
        }
    return {}


@dataclass(frozen=True)
class ClientSummary:
    client: Client
    last_24h: int
    last_7d: int
    last_referral_at: dt.datetime | None
    custom_fields: int


def client_summaries() -> list[ClientSummary]:
    """One line per client for the account managers' dashboard: one query, each figure a
    subquery on the (client, created_at) index, so a million referrals cost little."""
    now = timezone.now()

    def stored_since(delta: dt.timedelta):
        recent = Referral.objects.filter(client=OuterRef("pk"), created_at__gte=now - delta)
        # Plus the whole days of the window whose referrals the retention purge deleted.
        deleted = ReferralDay.objects.filter(
            client=OuterRef("pk"), utc_day__gt=(now - delta).astimezone(dt.UTC).date()
        )
        return Coalesce(Subquery(
            recent.order_by().values("client").annotate(n=Count("id")).values("n")
        ), 0) + Coalesce(Subquery(
            deleted.order_by().values("client").annotate(n=Sum("stored")).values("n")
        ), 0)  # fmt: skip

    latest = Referral.objects.filter(client=OuterRef("pk")).order_by("-created_at")
    fields = CustomField.objects.filter(client=OuterRef("pk")).order_by().values("client")
    clients = Client.objects.annotate(
        last_24h=stored_since(dt.timedelta(days=1)),
        last_7d=stored_since(dt.timedelta(days=7)),
        last_referral_at=Subquery(latest.values("created_at")[:1]),
        custom_field_count=Coalesce(Subquery(fields.annotate(n=Count("id")).values("n")), 0),
    ).order_by("name")
    return [
        ClientSummary(c, c.last_24h, c.last_7d, c.last_referral_at, c.custom_field_count)
        for c in clients
    ]


def _chart(days: list[Day], delivered: dict) -> dict[str, Any]:
    """An inline SVG drawn here (no chart library, nothing fetched from elsewhere): stored
    referrals as bars, delivered ones as a line over them, a y axis with round ticks and the
    date under every seventh day, counted back from today."""
    sent = [delivered.get(day.day, 0) for day in days]
    step = _tick_step(max([d.count for d in days] + sent))
    top = step * TICKS
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    slot = plot_width / max(len(days), 1)

    def y(value: int) -> float:
        return round(CHART_TOP + CHART_HEIGHT * (1 - value / top), 1)

    bars, points = [], []
    for index, (day, count) in enumerate(zip(days, sent, strict=True)):
        middle = round(CHART_LEFT + slot * (index + 0.5), 1)
        bars.append({
            "x": round(CHART_LEFT + slot * index + slot * 0.15, 1), "width": round(slot * 0.7, 1),
            "y": y(day.count), "height": round(CHART_HEIGHT * day.count / top, 1),
            "day": day.day, "count": day.count, "sent": count, "middle": middle, "sent_y": y(count),
            "label": (len(days) - 1 - index) % 7 == 0,
        })  # fmt: skip
        points.append(f"{middle},{y(count)}")
    return {
        "bars": bars, "line": " ".join(points), "width": CHART_WIDTH, "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT, "bottom": CHART_TOP + CHART_HEIGHT,
        "label_y": CHART_TOP + CHART_HEIGHT + 18, "height": CHART_TOP + CHART_HEIGHT + 26,
        "ticks": [{"value": step * n, "y": y(step * n)} for n in range(TICKS + 1)],
        "total": sum(d.count for d in days), "delivered": sum(sent),
    }  # fmt: skip


def _tick_step(peak: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that covers ``peak`` in ``TICKS`` steps."""
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            if factor * magnitude * TICKS >= peak:
                return factor * magnitude
        magnitude *= 10
