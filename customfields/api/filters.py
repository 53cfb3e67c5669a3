from __future__ import annotations

from customfields.models import CustomField
from referrals.api.filters import ClientFilter


class CustomFieldFilter(ClientFilter):
    class Meta:
        model = CustomField
        fields = ["kind"]
