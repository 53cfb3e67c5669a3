"""Realistic demo referrals, generated locally (Faker), never downloaded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from faker import Faker

_BROWSERS = [("Chrome", "131.0"), ("Safari", "18.1"), ("Firefox", "133.0"), ("Edge", "131.0")]
_DEVICES = [("iOS", "mobile"), ("Android", "mobile"), ("Windows", "desktop"), ("macOS", "desktop")]
_OFFERS = [
    ("Get 20% off your first box", "Yes, send me the offer"),
    ("Free trial for 30 days", "Start my trial"),
    ("Win a weekend for two", "Enter me"),
]


def demo_records(
    *, client_slug: str, campaigns: list[str], count: int, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """Ingestion-API records (the same shape a collector posts), reproducible by ``seed``."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    now = timezone.now()
    for number in range(count):
        gender = rng.choice(["M", "F", "F", "M", "X"])
        first = fake.first_name_male() if gender == "M" else fake.first_name_female()
        last = fake.last_name()
        birth = fake.date_of_birth(minimum_age=18, maximum_age=80)
        browser, version = rng.choice(_BROWSERS)
        os_name, device = rng.choice(_DEVICES)
        ad_text, ad_response = rng.choice(_OFFERS)
        opted_in = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        yield {
            "client": client_slug,
            "campaign": rng.choice(campaigns),
            "external_id": f"demo-{seed}-{number:06d}",
            "email": f"{first}.{last}.{number}@example.com".lower().replace(" ", ""),
            "title": rng.choice(["Mr", "Ms", "Mrs", "Dr", ""]),
            "first_name": first,
            "last_name": last,
            "gender": gender,
            "birth_date": birth.isoformat(),
            "age": (now.date() - birth).days // 365,
            "mobile": fake.phone_number(),
            "address1": fake.street_address(),
            "address2": "",
            "city": fake.city(),
            "state": fake.county(),
            "zip_code": fake.postcode(),
            "country": "GB",
            "language": "en-GB",
            "ip_address": fake.ipv4_public(),
            "user_agent": fake.user_agent(),
            "browser": browser,
            "browser_version": version,
            "os": os_name,
            "device": device,
            "ad_text": ad_text,
            "ad_response": ad_response,
            "audience_id": f"aud-{rng.randint(1, 5)}",
            "audience_name": rng.choice(["Shoppers", "Travellers", "Foodies", "Parents"]),
            "bid_price": str(Decimal(rng.randint(50, 500)) / 100),
            "currency": "GBP",
            "confirmation_ref": fake.bothify("CONF-????-####").upper(),
            "opted_in_at": opted_in.isoformat(),
            "extra": {"newsletter": rng.choice([True, False]), "source": "demo"},
        }
