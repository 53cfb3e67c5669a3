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


def make_file_delivery(client: Client, *, kind: str = "sftp", **overrides: Any):
    """An active file delivery of ``client`` (scheduled daily at 06:00 unless overridden)."""
    import datetime as dt

    from deliveries.models import Delivery

    campaigns = overrides.pop("campaigns", None)
    fields: dict[str, Any] = {
        "client": client,
        "name": f"{kind} drop {next(_numbers)}",
        "kind": kind,
        "host": "127.0.0.1",
        "username": "nobody",
        "schedule_kind": "daily",
        "schedule_time": dt.time(6, 0),
        # Everything stored from the start of the test on (and a little before) is owed.
        "starts_at": timezone.now() - dt.timedelta(minutes=1),
    }
    fields.update(overrides)
    delivery = Delivery.objects.create(**fields)
    if campaigns is not None:
        delivery.all_campaigns = False
        delivery.save(update_fields=["all_campaigns"])
        delivery.campaigns.set(campaigns)
    return delivery


def make_api_delivery(client: Client, url: str, **overrides: Any):
    """An active real-time delivery of ``client`` posting JSON to ``url``, saved through the
    service (validated; a signing secret generated)."""

    from deliveries.models import Delivery
    from deliveries.services import delivery_save

    fields: dict[str, Any] = {
        # From now on: an earlier start would owe (backfill) what the test stored before.
        "client": client, "name": f"crm {next(_numbers)}", "kind": "api", "url": url,
        "starts_at": timezone.now(),
    }  # fmt: skip
    fields.update(overrides)
    return delivery_save(Delivery(**fields))
