"""Properties of the ingestion API over arbitrary input.

Whatever JSON (or bytes) a collector sends, the API answers with a deliberate status and never a
500, and it stores exactly the records it reports as created, each of which passes the model's
own validation: an invalid record is never stored, and a request is never half stored.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from referrals.api.serializers import INGEST_FIELDS
from referrals.models import Campaign, Referral
from tests.test_ingest_api import post

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # leave no example database in the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text of any code point, lone surrogates and NUL included (json.dumps escapes them), with the
# strings that have broken storage before drawn more often than chance would.
any_text = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\U0001f600", "ß", "İ", "ǅ", "\u2028"]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

times = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()
).map(lambda value: value.isoformat())
# For each field, values a collector plausibly sends (so records often are stored), mixed with
# arbitrary JSON (so they often are not).
plausible = {
    "client": st.sampled_from(["alpha", "bravo", "nobody", "Alpha", ""]),
    "campaign": st.sampled_from(["c-1", "c-2", " c-1 ", "x" * 101]) | any_text,
    "campaign_name": st.sampled_from(["Summer", "n" * 201]) | any_text,
    "external_id": st.sampled_from(["e-1", "e-2", "e-3", " e-1", "x" * 101]) | any_text,
    "opted_in_at": times | st.sampled_from(["2024-02-30T00:00:00Z", "9999-12-31T23:00-05:00"]),
    "birth_date": st.dates().map(str),
    "age": st.integers(min_value=-5, max_value=40_000),
    "email": st.emails() | st.sampled_from(["not-an-email", "a@b"]),
    "country": st.sampled_from(["GB", "gb", "GBR", "1A", "ß", "ǅ"]),
    "currency": st.sampled_from(["GBP", "eur", "12", "ÄÖÜ"]),
    "bid_price": st.decimals(allow_nan=True, places=5).map(str) | st.floats(),
    "ip_address": st.ip_addresses().map(str) | st.sampled_from(["fe80::1%eth0", "999.1.1.1"]),
    "extra": st.dictionaries(any_text, json_values, max_size=4),
}
REQUIRED = ("client", "campaign", "external_id", "opted_in_at")


# Values that pass, so that many records are stored and the stored ones can be checked.
valid = {
    "client": st.sampled_from(["alpha", "bravo"]),
    "campaign": st.sampled_from(["c-1", "c-2", "c-3"]),
    "external_id": st.sampled_from(["e-1", "e-2", "e-3"])
    | st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
    "opted_in_at": st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(lambda value: value.isoformat()),
}


def _value(name: str) -> st.SearchStrategy:
    return plausible.get(name, any_text) | json_values


OPTIONAL = (*(n for n in ("campaign_name", *INGEST_FIELDS) if n not in REQUIRED), "unknown_field")
# A few optional fields per record: with many, nearly every record would hold a bad one.
optional_fields = st.lists(st.sampled_from(OPTIONAL), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: _value(name) for name in names})
)


def _records(required: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    return st.builds(
        lambda fields, optional: {**fields, **optional},
        st.fixed_dictionaries(required),
        optional_fields,
    )


# Records whose required fields pass (often stored), and records where anything goes.
good_records = _records(valid)
wild_records = _records({name: valid[name] | _value(name) for name in REQUIRED})
records = good_records | wild_records
bodies = st.one_of(
    good_records,
    st.lists(good_records, min_size=1, max_size=6),
    st.lists(records | json_values, min_size=1, max_size=6),
    wild_records,
    json_values,
)


def _expected_status(body: dict) -> int:
    if body["invalid"]:
        return 207 if body["created"] or body["duplicates"] else 400
    return 201 if body["created"] else 200


@PROPERTY_SETTINGS
@given(payload=bodies)
def test_any_json_is_answered_deliberately_and_only_valid_records_are_stored(
    manager_api, client_a, client_b, payload
):
    before_ids = set(Referral.objects.values_list("id", flat=True))
    campaigns_before = Campaign.objects.count()

    response = post(manager_api, json.dumps(payload))  # a JSON string too is JSON-encoded

    event(f"status {response.status_code}")
    assert response.status_code in (200, 201, 207, 400), response.content
    body = response.json()
    new_ids = set(Referral.objects.values_list("id", flat=True)) - before_ids
    if "results" not in body:  # refused as a whole: not a record or a list of them
        assert response.status_code == 400
        assert not new_ids
        assert Campaign.objects.count() == campaigns_before
        return

    records_sent = payload if isinstance(payload, list) else [payload]
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(records_sent)))
    assert response.status_code == _expected_status(body)
    by_status = {s: [r for r in results if r["status"] == s] for s in ("created", "duplicate")}
    assert body["created"] == len(by_status["created"])
    assert body["duplicates"] == len(by_status["duplicate"])
    assert body["invalid"] == len(results) - body["created"] - body["duplicates"]

    # exactly the records reported created were stored: nothing else, nothing half
    assert new_ids == {r["id"] for r in by_status["created"]}
    for result in by_status["duplicate"]:
        assert Referral.objects.filter(pk=result["id"]).exists()
    for result in results:
        record = records_sent[result["index"]]
        if result["status"] == "invalid":
            assert "id" not in result
            assert result["errors"]
            assert all(e["field"] and e["message"] for e in result["errors"])
            if not isinstance(record, dict):
                assert [e["field"] for e in result["errors"]] == ["non_field_errors"]
        else:
            assert isinstance(record, dict)
            assert set(REQUIRED) <= set(record)
            assert record["client"] in ("alpha", "bravo")

    # what was stored is valid by the model's own rules, independent of the API's serializer
    for referral in Referral.objects.filter(pk__in=new_ids):
        referral.full_clean()
        assert referral.external_id == referral.external_id.strip() != ""
        assert re.fullmatch(r"([A-Z]{2})?", referral.country)
        assert re.fullmatch(r"([A-Z]{3})?", referral.currency)
        assert 0 <= (referral.age or 0) <= 32767
        json.dumps(referral.extra).encode("utf-8")  # storable text only


@PROPERTY_SETTINGS
@given(
    raw=st.binary(max_size=200)
    | st.builds(lambda value: json.dumps(value).encode(), json_values)
    | st.builds(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"),
                json_values)
)  # fmt: skip
def test_any_bytes_are_answered_deliberately(manager_api, client_a, raw):
    before = Referral.objects.count(), Campaign.objects.count()

    response = post(manager_api, raw)

    event(f"status {response.status_code}")
    assert response.status_code in (200, 201, 207, 400), response.content
    assert response.json() is not None
    if response.status_code == 400:
        assert (Referral.objects.count(), Campaign.objects.count()) == before
