from __future__ import annotations

import django_filters

from referrals.models import Referral


class ReferralFilter(django_filters.FilterSet):
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Stored at or after (ISO 8601)."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Stored before (ISO 8601)."
    )
    campaign = django_filters.CharFilter(
        field_name="campaign__external_id", label="Campaign external id."
    )
    client = django_filters.CharFilter(field_name="client__slug", label="Client slug.")

    class Meta:
        model = Referral
        fields: list[str] = []
