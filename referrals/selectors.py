"""Reads for the dashboards: small, bounded, cached briefly."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.text import smart_split, unescape_string_literal

from referrals.models import Client, Referral, ReferralDay

CACHE_SECONDS = 60
# What the referral list's search box matches: each word, case-insensitively and exactly, in
# any of these (served by the functional indexes on the model).
SEARCH_FIELDS = ("external_id", "email", "last_name", "first_name")


def search_terms(text: str) -> list[str]:
    """The words of a search as the admin splits them: quoted phrases stay whole."""
    terms = []
    for term in smart_split(text):
        if term[:1] in ('"', "'") and term[0] == term[-1]:
            term = unescape_string_literal(term)
        terms.append(term)
    return terms


def referral_search(text: str) -> Q:
    """Referrals matching every word of ``text`` in one of ``SEARCH_FIELDS`` (any case)."""
    query = Q()
    for term in search_terms(text):
        query &= Q.create([(f"{name}__iexact", term) for name in SEARCH_FIELDS], connector=Q.OR)
    return query


@dataclass(frozen=True)
class Day:
    day: dt.date
    count: int


def referrals_per_day(*, client: Client | None, days: int = 30) -> list[Day]:
    """Referrals stored per day over the last ``days`` days (the client's days, or UTC days
    for all clients), oldest first, days without referrals included as 0."""
    zone = client.zone if client else zoneinfo.ZoneInfo("UTC")
    key = f"referrals-per-day:{client.pk if client else 'all'}:{days}"
    counts = cache.get(key)
    if counts is None:
        today = timezone.now().astimezone(zone).date()
        first = today - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(first, dt.time.min, tzinfo=zone)
        rows = Referral.objects.filter(created_at__gte=since)
        if client is not None:
            rows = rows.filter(client=client)
        grouped = rows.annotate(day=TruncDate("created_at", tzinfo=zone)).values("day")
        found = {row["day"]: row["n"] for row in grouped.annotate(n=Count("id")).order_by()}
        # Referrals the retention purge deleted were counted by day first (``ReferralDay``).
        day_field = "day" if client is not None else "utc_day"
        deleted = ReferralDay.objects.filter(**{f"{day_field}__gte": first})
        if client is not None:
            deleted = deleted.filter(client=client)
        for day, n in deleted.values_list(day_field).annotate(n=Sum("stored")).order_by():
            found[day] = found.get(day, 0) + n
        counts = [(first + dt.timedelta(days=n), 0) for n in range(days)]
        counts = [(day, found.get(day, 0)) for day, _ in counts]
        cache.set(key, counts, CACHE_SECONDS)
    return [Day(day, count) for day, count in counts]
