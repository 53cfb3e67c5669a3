"""What the admin's home page shows: a client user's own data, or every client's health."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from customfields.models import CustomField
from referrals.models import ExportAudit
from referrals.selectors import Day, client_summaries, referrals_per_day
from referrals.tenancy import is_account_manager, user_client

CHART_HEIGHT, BAR_WIDTH = 120, 14


def dashboard_context(user: AbstractBaseUser) -> dict[str, Any]:
    client = user_client(user)
    if client is not None:
        return {
            "home_client": client,
            "chart": _chart(referrals_per_day(client=client)),
            "custom_fields": CustomField.objects.filter(client=client).order_by("name"),
            "recent_exports": ExportAudit.objects.filter(user=user)[:5],
        }
    if is_account_manager(user) and user.has_perm("referrals.view_referral"):
        return {
            "summaries": client_summaries(),
            "chart": _chart(referrals_per_day(client=None)),
        }
    return {}


def _chart(days: list[Day]) -> dict[str, Any]:
    """Bars for an inline SVG: no chart library, nothing fetched from elsewhere."""
    top = max((d.count for d in days), default=0) or 1
    bars = []
    for index, day in enumerate(days):
        height = round(CHART_HEIGHT * day.count / top)
        bars.append({"x": index * BAR_WIDTH, "y": CHART_HEIGHT - height, "height": height,
                     "width": BAR_WIDTH - 2, "day": day.day, "count": day.count})  # fmt: skip
    return {"bars": bars, "width": len(days) * BAR_WIDTH, "height": CHART_HEIGHT,
            "total": sum(d.count for d in days), "top": top}  # fmt: skip
