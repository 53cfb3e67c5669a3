"""Preview a custom field before saving it: its output for the client's latest referrals and
for a typed sample."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from customfields.engine import Column, compile_columns
from customfields.models import CustomField
from referrals.api.serializers import ReferralIngestSerializer
from referrals.models import Campaign, Referral

LATEST = 10


class SampleError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid sample")
        self.errors = errors


def custom_field_preview(
    definition: CustomField, *, sample: dict[str, Any] | None = None, latest: int = LATEST
) -> dict[str, Any]:
    """Render ``definition`` (saved or not, already validated) without saving anything."""
    client = definition.client
    others = CustomField.objects.filter(client=client).exclude(pk=definition.pk)
    compiled = compile_columns(
        client=client,
        columns=[Column(definition.name, definition.name)],
        custom_fields=[*others, definition],
    )
    referrals = (
        Referral.objects.filter(client=client)
        .select_related("client", "campaign")
        .order_by("-created_at", "-id")[:latest]
    )
    latest_rows = [
        {"referral_id": r.pk, "external_id": r.external_id, "value": compiled.render_referral(r)[0]}
        for r in referrals
    ]
    result: dict[str, Any] = {"latest": latest_rows}
    if sample is not None:
        result["sample"] = compiled.render_referral(sample_referral(client, sample))[0]
    return result


def sample_referral(client, sample: dict[str, Any]) -> Referral:
    if not isinstance(sample, dict):
        raise SampleError({"sample": ["Give the sample as an object of referral fields."]})
    data = {"opted_in_at": timezone.now().isoformat(), "external_id": "sample", **sample}
    # Every key is checked as ingestion checks it, also those the preview then ignores.
    serializer = ReferralIngestSerializer(data=data, partial=True)
    if not serializer.is_valid():
        raise SampleError({f"sample.{k}": v for k, v in serializer.errors.items()})
    fields = dict(serializer.validated_data)
    for ignored in ("client", "campaign_name"):
        fields.pop(ignored, None)
    campaign_id = fields.pop("campaign", "sample")
    campaign = Campaign(client=client, external_id=str(campaign_id), name=str(campaign_id))
    return Referral(client=client, campaign=campaign, created_at=timezone.now(), **fields)
