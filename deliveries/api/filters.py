from __future__ import annotations

from deliveries.models import Delivery
from referrals.api.filters import ClientFilter


class DeliveryFilter(ClientFilter):
    class Meta:
        model = Delivery
        fields = ["kind", "active"]
