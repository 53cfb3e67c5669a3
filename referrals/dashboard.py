"""What the admin's home page shows: a client user's own data, or every client's health."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from customfields.models import CustomField
from deliveries.selectors import delivered_per_day, deliveries_health, recent_batches
from referrals.models import ExportAudit
from referrals.selectors import Day, client_summaries, referrals_per_day
from referrals.tenancy import is_account_manager, user_client

CHART_HEIGHT, BAR_WIDTH = 120, 14


def dashboard_context(user: AbstractBaseUser) -> dict[str, Any]:
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


def _chart(days: list[Day], delivered: dict) -> dict[str, Any]:
    """Bars for an inline SVG (stored, and delivered by file batches, side by side): no chart
    library, nothing fetched from elsewhere."""
    top = max([d.count for d in days] + [delivered.get(d.day, 0) for d in days]) or 1
    bars = []
    half = (BAR_WIDTH - 2) // 2
    for index, day in enumerate(days):
        height = round(CHART_HEIGHT * day.count / top)
        sent = delivered.get(day.day, 0)
        sent_height = round(CHART_HEIGHT * sent / top)
        bars.append({"x": index * BAR_WIDTH, "y": CHART_HEIGHT - height, "height": height,
                     "width": half, "day": day.day, "count": day.count,
                     "sent_x": index * BAR_WIDTH + half, "sent_y": CHART_HEIGHT - sent_height,
                     "sent_height": sent_height, "sent": sent})  # fmt: skip
    return {"bars": bars, "width": len(days) * BAR_WIDTH, "height": CHART_HEIGHT,
            "total": sum(d.count for d in days), "top": top,
            "delivered": sum(delivered.get(d.day, 0) for d in days)}  # fmt: skip
