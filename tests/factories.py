"""Small builders for test data; referrals go through the real ingestion service."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone

from referrals.models import Client, Referral
from referrals.services import referrals_ingest

_numbers = itertools.count(1)


def make_client(slug: str, *, name: str | None = None, time_zone: str = "UTC") -> Client:
    return Client.objects.create(name=name or slug.title(), slug=slug, time_zone=time_zone)


def referral_record(client: Client, **overrides: Any) -> dict[str, Any]:
    """A valid ingestion record for ``client``; override any field."""
    number = next(_numbers)
    record: dict[str, Any] = {
        "client": client.slug,
        "campaign": "camp-1",
        "external_id": f"{client.slug}-ext-{number}",
        "email": f"person{number}@{client.slug}.example.com",
        "first_name": "Ada",
        "last_name": f"Lovelace{number}",
        "gender": "F",
        "country": "GB",
        "opted_in_at": timezone.now().isoformat(),
    }
    record.update(overrides)
    return record


def make_referral(client: Client, **overrides: Any) -> Referral:
    [outcome] = referrals_ingest(records=[referral_record(client, **overrides)])
    assert outcome.status == "created", outcome
    return Referral.objects.get(pk=outcome.id)
