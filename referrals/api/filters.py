from __future__ import annotations

from referrals.api.query import DateTimeFilter, StrictFilterSet, slug_filter, text_filter
from referrals.models import Referral


class ClientFilter(StrictFilterSet):
    """``?client=<slug>``: that client's objects (a client user's are its own client's anyway)."""

    client = slug_filter("client__slug", "Client slug: only this client's objects.")


class ReferralFilter(ClientFilter):
    created_after = DateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="Stored at or after this time: an RFC 3339 date-time with its offset.",
    )
    created_before = DateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label="Stored before this time: an RFC 3339 date-time with its offset.",
    )
    campaign = text_filter(
        "campaign__external_id", "Campaign external id, exactly as sent.", max_length=100
    )

    class Meta:
        model = Referral
        fields: list[str] = []
