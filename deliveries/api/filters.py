from __future__ import annotations

from deliveries.models import Delivery
from referrals.api.filters import ClientFilter
from referrals.api.query import BooleanFilter


class DeliveryFilter(ClientFilter):
    active = BooleanFilter(field_name="active", label="Only active (true) or inactive (false).")

    class Meta:
        model = Delivery
        fields = ["kind"]
