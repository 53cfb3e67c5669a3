from __future__ import annotations

import datetime

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from referrals.models import Referral


class _UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC while the form is cleaned.

    A time whose UTC equivalent falls outside years 1-9999 (``9999-12-31T23:00:00-05:00``) is
    refused as invalid input here, rather than overflowing later in the database adapter.
    """

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class _UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class ClientFilter(django_filters.FilterSet):
    """``?client=<slug>``, checked as text first (a NUL would reach the database)."""

    client = django_filters.CharFilter(field_name="client__slug", label="Client slug.")


class ReferralFilter(ClientFilter):
    created_after = _UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Stored at or after (ISO 8601)."
    )
    created_before = _UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Stored before (ISO 8601)."
    )
    campaign = django_filters.CharFilter(
        field_name="campaign__external_id", label="Campaign external id."
    )

    class Meta:
        model = Referral
        fields: list[str] = []
