"""The ingestion API (POST /api/v1/referrals/) and the pull API (GET), end to end.

Every request goes through the real URL conf, authentication, parser, serializer, service and
database; row counts are compared before and after to prove a request is never half stored.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, connections, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from referrals.api.parsers import MAX_JSON_DEPTH
from referrals.models import Campaign, Referral
from referrals.roles import client_user_create
from referrals.services import referrals_ingest
from tests.conftest import PASSWORD, api_client_for
from tests.factories import make_client, referral_record

URL = "/api/v1/referrals/"


# --- helpers --------------------------------------------------------------------------------


def post(api: APIClient, body: Any, *, content_type: str = "application/json", **extra):
    """POST ``body`` (JSON-encoded unless already bytes or str) as the collector would."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return api.generic("POST", URL, body, content_type=content_type, **extra)


def rows() -> tuple[int, int]:
    return Referral.objects.count(), Campaign.objects.count()


def errors_by_field(result: dict) -> dict[str, str]:
    return {error["field"]: error["message"] for error in result["errors"]}


def ingest_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="referrals", codename="ingest_referral")


@pytest.fixture
def ingester(db):
    """A plain user (not staff) holding only the ingest permission: the collector's account."""
    user = get_user_model().objects.create_user(username="collector", password=PASSWORD)
    user.user_permissions.add(ingest_permission())
    return user


@pytest.fixture
def ingester_api(ingester) -> APIClient:
    return api_client_for(ingester)


# --- storing --------------------------------------------------------------------------------


def test_one_object_is_stored_whole_and_answered_201(manager_api, client_a):
    record = referral_record(
        client_a,
        campaign="summer-24",
        campaign_name="Summer 2024",
        country="gb",
        currency="gbp",
        bid_price="1.2500",
        age=37,
        birth_date="1987-03-04",
        ip_address="203.0.113.9",
        opted_in_at="2024-06-01T12:30:00+02:00",
        extra={"utm_source": "news", "score": 3, "tags": ["a", "b"]},
    )
    before = rows()

    response = post(manager_api, record)

    assert response.status_code == 201, response.content
    referral = Referral.objects.get(client=client_a, external_id=record["external_id"])
    assert response.json() == {
        "created": 1,
        "duplicates": 0,
        "invalid": 0,
        "results": [
            {"index": 0, "status": "created", "id": referral.pk,
             "external_id": record["external_id"]}
        ],
    }  # fmt: skip
    assert rows() == (before[0] + 1, before[1] + 1)
    assert referral.campaign.external_id == "summer-24"
    assert referral.campaign.name == "Summer 2024"
    assert referral.campaign.client == client_a
    assert referral.email == record["email"]
    assert referral.country == "GB"
    assert referral.currency == "GBP"
    assert referral.bid_price == Decimal("1.2500")
    assert referral.age == 37
    assert referral.birth_date == dt.date(1987, 3, 4)
    assert referral.ip_address == "203.0.113.9"
    assert referral.opted_in_at == dt.datetime(2024, 6, 1, 10, 30, tzinfo=dt.UTC)
    assert referral.extra == {"utm_source": "news", "score": 3, "tags": ["a", "b"]}


def test_null_and_absent_optional_text_both_store_empty(manager_api, client_a):
    record = referral_record(client_a, city=None, country=None, ip_address=None, age=None,
                             email=None, campaign_name=None, extra=None)  # fmt: skip
    del record["first_name"]

    response = post(manager_api, record)

    assert response.status_code == 201, response.content
    referral = Referral.objects.get(pk=response.json()["results"][0]["id"])
    assert (referral.city, referral.country, referral.first_name) == ("", "", "")
    assert (referral.ip_address, referral.age) == (None, None)
    assert (referral.email, referral.extra, referral.campaign.name) == ("", {}, "camp-1")


def test_a_list_is_stored_and_answered_in_input_order(manager_api, client_a, client_b):
    records = [referral_record(client_a), referral_record(client_b), referral_record(client_a)]
    before = rows()

    response = post(manager_api, records)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["invalid"]) == (3, 0, 0)
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["external_id"] for r in body["results"]] == [r["external_id"] for r in records]
    for result, record in zip(body["results"], records, strict=True):
        stored = Referral.objects.get(pk=result["id"])
        assert (stored.client.slug, stored.external_id) == (record["client"], record["external_id"])
    # one new campaign "camp-1" per client: campaigns are per client
    assert rows() == (before[0] + 3, before[1] + 2)
    assert Campaign.objects.filter(external_id="camp-1").count() == 2


def test_a_new_campaign_without_a_name_is_named_after_its_external_id(manager_api, client_a):
    response = post(manager_api, referral_record(client_a, campaign="spring-7"))

    assert response.status_code == 201
    assert Campaign.objects.get(client=client_a, external_id="spring-7").name == "spring-7"


def test_a_known_campaign_is_reused_and_not_renamed(manager_api, client_a):
    campaign = Campaign.objects.create(client=client_a, external_id="c-9", name="Original")

    response = post(manager_api, referral_record(client_a, campaign="c-9", campaign_name="New"))

    assert response.status_code == 201
    referral = Referral.objects.get(pk=response.json()["results"][0]["id"])
    assert referral.campaign_id == campaign.pk
    campaign.refresh_from_db()
    assert campaign.name == "Original"
    assert Campaign.objects.filter(client=client_a).count() == 1


def test_the_limit_of_records_is_accepted_in_one_request(manager_api, client_a):
    records = [referral_record(client_a) for _ in range(1000)]
    before = Referral.objects.count()

    response = post(manager_api, records)

    assert response.status_code == 201
    assert response.json()["created"] == 1000
    assert Referral.objects.count() == before + 1000


# --- duplicates -----------------------------------------------------------------------------


def test_a_stored_external_id_is_a_duplicate_that_changes_nothing(manager_api, client_a):
    first = referral_record(client_a, email="first@example.com")
    stored_id = post(manager_api, first).json()["results"][0]["id"]
    again = {**first, "email": "second@example.com", "campaign": "brand-new-campaign"}
    before = rows()

    response = post(manager_api, again)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "created": 0,
        "duplicates": 1,
        "invalid": 0,
        "results": [
            {"index": 0, "status": "duplicate", "id": stored_id,
             "external_id": first["external_id"]}
        ],
    }  # fmt: skip
    assert rows() == before  # neither a referral nor the duplicate's new campaign
    assert Referral.objects.get(pk=stored_id).email == "first@example.com"


def test_the_same_external_id_for_another_client_is_not_a_duplicate(
    manager_api, client_a, client_b
):
    post(manager_api, referral_record(client_a, external_id="shared-1"))

    response = post(manager_api, referral_record(client_b, external_id="shared-1"))

    assert response.status_code == 201
    assert Referral.objects.filter(external_id="shared-1").count() == 2


def test_a_repeat_within_one_request_is_a_duplicate_of_the_first(manager_api, client_a):
    record = referral_record(client_a)
    before = Referral.objects.count()

    response = post(manager_api, [record, {**record, "email": "other@example.com"}])

    assert response.status_code == 201
    body = response.json()
    assert (body["created"], body["duplicates"], body["invalid"]) == (1, 1, 0)
    created, repeat = body["results"]
    assert created["status"] == "created"
    assert repeat == {
        "index": 1, "status": "duplicate", "id": created["id"],
        "external_id": record["external_id"],
    }  # fmt: skip
    assert Referral.objects.count() == before + 1
    assert Referral.objects.get(pk=created["id"]).email == record["email"]


def test_external_ids_are_compared_after_trimming(manager_api, client_a):
    record = referral_record(client_a, external_id="ext-trim")
    post(manager_api, record)

    response = post(manager_api, {**record, "external_id": "  ext-trim "})

    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "duplicate"


def test_new_and_duplicate_records_answer_201(manager_api, client_a):
    stored = referral_record(client_a)
    post(manager_api, stored)
    before = Referral.objects.count()

    response = post(manager_api, [stored, referral_record(client_a)])

    assert response.status_code == 201
    assert [r["status"] for r in response.json()["results"]] == ["duplicate", "created"]
    assert Referral.objects.count() == before + 1


# --- invalid records ------------------------------------------------------------------------


def test_some_invalid_records_answer_207_and_only_the_valid_are_stored(manager_api, client_a):
    good = referral_record(client_a)
    bad = referral_record(client_a, email="not-an-email", campaign="only-in-bad-record")
    before = rows()

    response = post(manager_api, [good, bad])

    assert response.status_code == 207, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["invalid"]) == (1, 0, 1)
    assert body["results"][0]["status"] == "created"
    assert body["results"][1] == {
        "index": 1, "status": "invalid", "external_id": bad["external_id"],
        "errors": [{"field": "email", "message": "Enter a valid email address."}],
    }  # fmt: skip
    assert rows() == (before[0] + 1, before[1] + 1)  # camp-1 only: no campaign from bad
    assert not Referral.objects.filter(external_id=bad["external_id"]).exists()
    assert not Campaign.objects.filter(external_id="only-in-bad-record").exists()


def test_invalid_and_duplicate_records_answer_207(manager_api, client_a):
    stored = referral_record(client_a)
    post(manager_api, stored)
    before = rows()

    response = post(manager_api, [stored, referral_record(client_a, age="old")])

    assert response.status_code == 207
    assert [r["status"] for r in response.json()["results"]] == ["duplicate", "invalid"]
    assert rows() == before


def test_all_invalid_answers_400_and_stores_nothing(manager_api, client_a):
    records = [
        referral_record(client_a, campaign="new-campaign", opted_in_at="yesterday"),
        referral_record(client_a, campaign="new-campaign", country="Great Britain"),
    ]
    before = rows()

    response = post(manager_api, records)

    assert response.status_code == 400
    body = response.json()
    assert (body["created"], body["duplicates"], body["invalid"]) == (0, 0, 2)
    assert [list(errors_by_field(r)) for r in body["results"]] == [["opted_in_at"], ["country"]]
    assert rows() == before


@pytest.mark.parametrize(
    ("overrides", "removed", "fields"),
    [
        ({}, ("client",), {"client"}),
        ({}, ("campaign",), {"campaign"}),
        ({}, ("external_id",), {"external_id"}),
        ({}, ("opted_in_at",), {"opted_in_at"}),
        (
            {},
            ("client", "campaign", "external_id", "opted_in_at"),
            {"client", "campaign", "external_id", "opted_in_at"},
        ),
        ({"client": None}, (), {"client"}),
        ({"client": "not a slug!"}, (), {"client"}),
        ({"client": ["alpha"]}, (), {"client"}),
        ({"campaign": {"id": 1}}, (), {"campaign"}),
        ({"campaign": ""}, (), {"campaign"}),
        ({"campaign": "c" * 101}, (), {"campaign"}),
        ({"campaign_name": "n" * 201}, (), {"campaign_name"}),
        ({"external_id": ""}, (), {"external_id"}),
        ({"external_id": "   "}, (), {"external_id"}),
        ({"external_id": None}, (), {"external_id"}),
        ({"external_id": "x" * 101}, (), {"external_id"}),
        ({"external_id": {"a": 1}}, (), {"external_id"}),
        ({"opted_in_at": "yesterday"}, (), {"opted_in_at"}),
        ({"opted_in_at": 1718000000}, (), {"opted_in_at"}),
        ({"opted_in_at": None}, (), {"opted_in_at"}),
        ({"opted_in_at": "2024-02-30T10:00:00Z"}, (), {"opted_in_at"}),
        ({"opted_in_at": "9999-12-31T23:59:59-12:00"}, (), {"opted_in_at"}),
        ({"opted_in_at": "0001-01-01T00:00:00+12:00"}, (), {"opted_in_at"}),
        ({"birth_date": "1990-13-01"}, (), {"birth_date"}),
        ({"birth_date": 19900101}, (), {"birth_date"}),
        ({"age": "old"}, (), {"age"}),
        ({"age": -1}, (), {"age"}),
        ({"age": 1.5}, (), {"age"}),
        ({"age": 40000}, (), {"age"}),
        ({"age": True}, (), {"age"}),
        ({"bid_price": "cheap"}, (), {"bid_price"}),
        ({"bid_price": "NaN"}, (), {"bid_price"}),
        ({"bid_price": "Infinity"}, (), {"bid_price"}),
        ({"bid_price": "1.23456"}, (), {"bid_price"}),
        ({"bid_price": 1e300}, (), {"bid_price"}),
        ({"email": "not-an-email"}, (), {"email"}),
        ({"email": 12}, (), {"email"}),
        ({"ip_address": "999.1.1.1"}, (), {"ip_address"}),
        ({"ip_address": 12345}, (), {"ip_address"}),
        ({"country": "GBR"}, (), {"country"}),
        ({"country": "1A"}, (), {"country"}),
        ({"country": "ß"}, (), {"country"}),  # upper-cases to "SS" (South Sudan)
        ({"currency": "12"}, (), {"currency"}),
        ({"first_name": True}, (), {"first_name"}),
        ({"first_name": {"a": 1}}, (), {"first_name"}),
        ({"first_name": ["Ada"]}, (), {"first_name"}),
        ({"first_name": "A" * 101}, (), {"first_name"}),
        ({"city": "Lon\u0000don"}, (), {"city"}),
        ({"extra": ["a"]}, (), {"extra"}),
        ({"extra": "text"}, (), {"extra"}),
        ({"extra": {"note": "a\u0000b"}}, (), {"extra"}),
        ({"extra": {"a\u0000b": 1}}, (), {"extra"}),
        ({"extra": {"deep": [[{"note": "\u0000"}]]}}, (), {"extra"}),
        ({"email": "bad", "age": "old", "country": "XYZ"}, (), {"email", "age", "country"}),
    ],
)
def test_an_invalid_record_names_each_bad_field(manager_api, client_a, overrides, removed, fields):
    record = {**referral_record(client_a, campaign="campaign-of-invalid-record"), **overrides}
    for name in removed:
        del record[name]
    before = rows()

    response = post(manager_api, record)

    assert response.status_code == 400, response.content
    [result] = response.json()["results"]
    assert result["index"] == 0
    assert result["status"] == "invalid"
    assert "id" not in result
    assert {e["field"] for e in result["errors"]} == fields
    assert all(e["message"] for e in result["errors"])
    assert rows() == before


def test_unknown_fields_are_refused_and_point_to_extra(manager_api, client_a):
    record = referral_record(client_a, favourite_colour="blue", shoe_size=9)
    before = rows()

    response = post(manager_api, record)

    assert response.status_code == 400
    [result] = response.json()["results"]
    assert result["external_id"] == record["external_id"]
    errors = errors_by_field(result)
    assert set(errors) == {"favourite_colour", "shoe_size"}
    assert all("'extra'" in message for message in errors.values())
    assert rows() == before


def test_an_unknown_client_is_reported_on_the_client_field(manager_api, client_a):
    record = {**referral_record(client_a), "client": "no-such-client", "campaign": "fresh"}
    before = rows()

    response = post(manager_api, [record, referral_record(client_a)])

    assert response.status_code == 207
    unknown = response.json()["results"][0]
    assert unknown["status"] == "invalid"
    assert unknown["external_id"] == record["external_id"]
    assert list(errors_by_field(unknown)) == ["client"]
    assert "no-such-client" in errors_by_field(unknown)["client"]
    assert rows() == (before[0] + 1, before[1] + 1)
    assert not Campaign.objects.filter(external_id="fresh").exists()


@pytest.mark.parametrize("item", [1, "record", None, True, [], ["a", 1], 1.5])
def test_list_items_that_are_not_objects_are_invalid_records(manager_api, client_a, item):
    before = Referral.objects.count()

    response = post(manager_api, [item, referral_record(client_a)])

    assert response.status_code == 207, response.content
    invalid, created = response.json()["results"]
    assert invalid["index"] == 0
    assert invalid["status"] == "invalid"
    assert list(errors_by_field(invalid)) == ["non_field_errors"]
    assert created["status"] == "created"
    assert Referral.objects.count() == before + 1


def test_an_empty_object_reports_every_required_field(manager_api, db):
    response = post(manager_api, {})

    assert response.status_code == 400
    [result] = response.json()["results"]
    assert set(errors_by_field(result)) == {"client", "campaign", "external_id", "opted_in_at"}


# --- bad bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"client": "alpha",',
        b"",
        b"[1, 2,]",
        b"{'client': 'alpha'}",
        b'"a string"',
        b"42",
        b"4.2",
        b"true",
        b"null",
        b"[]",
        b"NaN",
        b"[NaN]",
        b"Infinity",
        b"1" * 5000,  # an integer past Python's digit limit
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's recursion
    ],
)
def test_a_body_that_is_no_usable_json_answers_400(manager_api, client_a, body):
    before = rows()

    response = post(manager_api, body)

    assert response.status_code == 400, response.content
    assert response.json()  # a JSON explanation, not an HTML error page
    assert rows() == before


def _spoiled(record: dict, key: str, raw_json: str) -> bytes:
    """``record`` as JSON text with ``"key": raw_json`` appended verbatim."""
    return (json.dumps(record)[:-1] + f', "{key}": {raw_json}}}').encode()


@pytest.mark.parametrize(
    ("spoil", "needle"),
    [
        (
            lambda r: json.dumps({**r, "first_name": "Zoé"}, ensure_ascii=False).encode("latin-1"),
            "UTF-8",
        ),
        (lambda r: json.dumps(r).encode("utf-16"), "UTF-8"),
        (lambda r: json.dumps(r).encode("utf-32"), "UTF-8"),
        (lambda r: _spoiled(r, "bid_price", "NaN"), "NaN"),
        (lambda r: _spoiled(r, "age", "-Infinity"), "Infinity"),
        (lambda r: _spoiled(r, "extra", '{"score": Infinity}'), "Infinity"),
        (lambda r: _spoiled(r, "city", '"\\ud800"'), "surrogate"),
        (lambda r: _spoiled(r, "\\udfff", "1"), "surrogate"),
        (lambda r: _spoiled(r, "extra", '{"\\ud83d": "x"}'), "surrogate"),
        (lambda r: _spoiled(r, "extra", '{"a": ["\\ude00"]}'), "surrogate"),
        (lambda r: _spoiled(r, "extra", '{"a": ' * 200 + "1" + "}" * 200), "deep"),
        (lambda r: _spoiled(r, "extra", "[" * 900 + "]" * 900), "deep"),
    ],
)
def test_a_valid_record_in_a_bad_encoding_answers_400(manager_api, client_a, spoil, needle):
    body = spoil(referral_record(client_a))
    before = rows()

    response = post(manager_api, body)

    assert response.status_code == 400, response.content
    assert needle.lower() in response.json()["detail"].lower()
    assert rows() == before


def test_extra_nested_to_the_depth_limit_is_stored_and_one_level_more_is_not(manager_api, client_a):
    def nested(levels: int) -> dict:
        value: Any = 1
        for _ in range(levels):
            value = {"a": value}
        return value

    # the list and the record are two levels, extra's chain of objects the rest
    at_limit = referral_record(client_a, extra=nested(MAX_JSON_DEPTH - 2))
    beyond = referral_record(client_a, extra=nested(MAX_JSON_DEPTH - 1))

    assert post(manager_api, [at_limit]).status_code == 201
    response = post(manager_api, [beyond])
    assert response.status_code == 400
    assert "deep" in response.json()["detail"]
    assert not Referral.objects.filter(external_id=beyond["external_id"]).exists()


def test_a_valid_surrogate_pair_is_one_character(manager_api, client_a):
    record = json.dumps(referral_record(client_a, first_name="\U0001f600"))  # ASCII-escaped
    assert "\\ud83d\\ude00" in record

    response = post(manager_api, record)

    assert response.status_code == 201
    assert Referral.objects.get(pk=response.json()["results"][0]["id"]).first_name == "\U0001f600"


@override_settings(INGEST_MAX_RECORDS=5)
def test_more_records_than_the_limit_answer_400_and_store_nothing(manager_api, client_a):
    assert post(manager_api, [referral_record(client_a) for _ in range(5)]).status_code == 201
    before = rows()

    response = post(manager_api, [referral_record(client_a) for _ in range(6)])

    assert response.status_code == 400
    assert "at most 5" in response.json()["detail"]
    assert rows() == before


def test_more_than_the_default_limit_answers_400(manager_api, db):
    response = post(manager_api, [{}] * 1001)

    assert response.status_code == 400
    assert "at most 1000" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "",
    ],
)
def test_a_body_that_is_not_json_answers_415(manager_api, client_a, content_type):
    before = rows()

    response = post(manager_api, referral_record(client_a), content_type=content_type)

    assert response.status_code == 415
    assert rows() == before


def test_a_json_content_type_with_a_charset_is_accepted(manager_api, client_a):
    response = post(
        manager_api, referral_record(client_a), content_type="application/json; charset=utf-8"
    )

    assert response.status_code == 201


def _padded_body(client, size: int) -> bytes:
    """A valid one-record body of exactly ``size`` bytes (padding inside ``extra``)."""
    record = referral_record(client, extra={"pad": ""})
    base = len(json.dumps(record).encode())
    record["extra"]["pad"] = "x" * (size - base)
    body = json.dumps(record).encode()
    assert len(body) == size
    return body


@override_settings(INGEST_MAX_BODY_BYTES=4096)
def test_a_body_at_the_byte_limit_is_accepted_and_one_byte_more_answers_413(manager_api, client_a):
    assert post(manager_api, _padded_body(client_a, 4096)).status_code == 201
    before = rows()

    response = post(manager_api, _padded_body(client_a, 4097))

    assert response.status_code == 413
    assert rows() == before


def test_a_body_over_the_default_limit_answers_413(manager_api, client_a):
    before = rows()

    response = post(manager_api, b"[" + b" " * (10 * 1024 * 1024) + b"]")

    assert response.status_code == 413
    assert rows() == before


def _chunked(api: APIClient, body: bytes, *, terminated: bool = True):
    """POST ``body`` as a WSGI server passes on a chunked request: with no Content-Length."""
    environ: dict[str, Any] = {
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),  # reads stop at the end, as a de-chunked input's do
    }
    if terminated:  # gunicorn de-chunks the body and marks the input as terminated
        environ["wsgi.input_terminated"] = True
    # no data for the test client: it then sets no Content-Length
    response = api.generic("POST", URL, b"", content_type="application/json", **environ)
    assert "CONTENT_LENGTH" not in response.wsgi_request.META
    return response


@override_settings(INGEST_MAX_BODY_BYTES=4096)
def test_a_chunked_body_over_the_limit_answers_413(manager_api, client_a):
    before = rows()

    response = _chunked(manager_api, _padded_body(client_a, 64 * 1024))

    assert response.status_code == 413
    assert rows() == before


@override_settings(INGEST_MAX_BODY_BYTES=4096)
def test_a_chunked_body_within_the_limit_is_stored(manager_api, client_a):
    body = _padded_body(client_a, 4000)

    response = _chunked(manager_api, body)

    assert response.status_code == 201, response.content
    external_id = json.loads(body)["external_id"]
    assert Referral.objects.filter(external_id=external_id).count() == 1


def test_a_body_without_length_the_server_did_not_terminate_answers_411(manager_api, client_a):
    before = rows()

    response = _chunked(manager_api, json.dumps(referral_record(client_a)).encode(),
                        terminated=False)  # fmt: skip

    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    assert rows() == before


# --- who may ingest -------------------------------------------------------------------------


def test_anonymous_callers_answer_401(client_a):
    before = rows()

    response = post(APIClient(), referral_record(client_a))

    assert response.status_code == 401
    assert rows() == before


def test_a_wrong_token_answers_401(client_a):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert post(api, referral_record(client_a)).status_code == 401


def test_a_client_user_may_not_ingest_even_for_their_own_client(api_a, client_a):
    before = rows()

    response = post(api_a, referral_record(client_a))

    assert response.status_code == 403
    assert rows() == before


def test_a_client_user_given_the_ingest_permission_still_may_not(user_a, client_a):
    user_a.user_permissions.add(ingest_permission())

    response = post(api_client_for(user_a), referral_record(client_a))

    assert response.status_code == 403
    assert Referral.objects.count() == 0


def test_a_plain_user_without_the_permission_may_not_ingest(client_a):
    user = get_user_model().objects.create_user(username="plain", password=PASSWORD)

    response = post(api_client_for(user), referral_record(client_a))

    assert response.status_code == 403
    assert Referral.objects.count() == 0


def test_a_plain_user_with_only_the_ingest_permission_may_ingest(ingester_api, client_a):
    response = post(ingester_api, referral_record(client_a))

    assert response.status_code == 201
    assert Referral.objects.count() == 1


def test_staff_without_a_client_membership_may_ingest(client_a):
    staff = get_user_model().objects.create_user(username="s", password=PASSWORD, is_staff=True)

    response = post(api_client_for(staff), referral_record(client_a))

    assert response.status_code == 201


def test_an_inactive_collector_is_refused(ingester, client_a):
    api = api_client_for(ingester)
    ingester.is_active = False
    ingester.save()

    assert post(api, referral_record(client_a)).status_code == 401
    assert Referral.objects.count() == 0


# --- reading back ---------------------------------------------------------------------------


def _store_at(client, created_at: dt.datetime, **overrides) -> Referral:
    """A referral with a chosen storage time: an insert, which immutability allows."""
    record = referral_record(client, **overrides)
    campaign, _ = Campaign.objects.get_or_create(
        client=client, external_id=record.pop("campaign"), defaults={"name": "c"}
    )
    record.pop("client")
    return Referral.objects.create(
        client=client, campaign=campaign, created_at=created_at, **record
    )


def _follow(api: APIClient, url: str) -> list[dict]:
    seen = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen.extend(body["results"])
        url = body["next"]
        pages += 1
        assert pages < 1000, "the cursor never ends"
    return seen


def test_cursor_pages_list_every_referral_once_newest_first(manager_api, client_a, client_b):
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(23):
        # several share a storage time, so the cursor must break ties
        _store_at(client_a if i % 3 else client_b, base + dt.timedelta(seconds=i // 4))
    for _ in range(3):  # and some go through the API, as in production
        post(manager_api, referral_record(client_a))
    expected = list(Referral.objects.order_by("-created_at", "-id").values_list("id", flat=True))

    seen = _follow(manager_api, f"{URL}?page_size=4")

    assert [r["id"] for r in seen] == expected
    assert len(expected) == 26


def test_cursor_pages_for_a_client_user_hold_only_their_referrals(api_a, client_a, client_b):
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    for i in range(12):
        _store_at(client_a if i % 2 else client_b, base + dt.timedelta(seconds=i // 3))
    expected = list(
        Referral.objects.filter(client=client_a)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )

    seen = _follow(api_a, f"{URL}?page_size=2")

    assert [r["id"] for r in seen] == expected
    assert {r["client"] for r in seen} == {"alpha"}


def test_a_referral_reads_back_with_its_fields(manager_api, client_a):
    record = referral_record(
        client_a, campaign="c-1", bid_price="2.5", extra={"k": "v"}, birth_date="1990-01-02"
    )
    referral_id = post(manager_api, record).json()["results"][0]["id"]

    response = manager_api.get(f"{URL}{referral_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == referral_id
    assert body["client"] == "alpha"
    assert body["campaign"] == "c-1"
    assert body["external_id"] == record["external_id"]
    assert body["email"] == record["email"]
    assert body["extra"] == {"k": "v"}
    assert body["birth_date"] == "1990-01-02"
    assert Decimal(body["bid_price"]) == Decimal("2.5")
    assert body["created_at"]


def test_a_client_user_reads_their_own_referral_and_not_another_clients(api_a, client_a, client_b):
    own = _store_at(client_a, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    other = _store_at(client_b, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))

    assert api_a.get(f"{URL}{own.pk}/").status_code == 200
    assert api_a.get(f"{URL}{other.pk}/").status_code == 404
    assert api_a.get(URL, {"client": "bravo"}).json()["results"] == []


@pytest.mark.parametrize("pk", ["abc", "-1", "0", "99999999999999999999999"])
def test_a_missing_or_malformed_id_answers_404(manager_api, db, pk):
    assert manager_api.get(f"{URL}{pk}/").status_code == 404


def test_anonymous_and_permissionless_readers_are_refused(ingester_api, db):
    assert APIClient().get(URL).status_code == 401
    # the collector may write but holds no view permission
    assert ingester_api.get(URL).status_code == 403


def test_filters_by_stored_time_campaign_and_client(manager_api, client_a, client_b):
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    early = _store_at(client_a, t0, campaign="x")
    boundary = _store_at(client_a, t0 + dt.timedelta(hours=1), campaign="y")
    late = _store_at(client_b, t0 + dt.timedelta(hours=2), campaign="x")

    def ids(**params) -> list[int]:
        response = manager_api.get(URL, params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    after = "2024-03-01T01:00:00Z"
    assert ids(created_after=after) == [late.pk, boundary.pk]  # at or after
    assert ids(created_before=after) == [early.pk]  # strictly before
    assert ids(created_after="2024-03-01T01:00:00+01:00") == [late.pk, boundary.pk, early.pk]
    assert ids(created_after="2024-03-01T00:30:00Z", created_before="2024-03-01T01:30:00Z") == [
        boundary.pk
    ]
    assert ids(campaign="x") == [late.pk, early.pk]
    assert ids(client="alpha") == [boundary.pk, early.pk]
    assert ids(client="alpha", campaign="x") == [early.pk]
    assert ids(client="nobody") == []


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize(
    "value", ["yesterday", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z", "2024-01-01"]
)  # a valid date-time beyond years 1-9999 in UTC is taken (tests/test_api_query_params.py)
def test_a_malformed_time_filter_answers_400_naming_it(manager_api, db, name, value):
    response = manager_api.get(URL, {name: value})

    assert response.status_code == 400
    assert list(response.json()) == [name]


# --- immutability ---------------------------------------------------------------------------


@pytest.fixture
def stored(client_a) -> Referral:
    [outcome] = referrals_ingest(records=[referral_record(client_a, email="kept@example.com")])
    return Referral.objects.get(pk=outcome.id)


def test_saving_a_stored_referral_raises(stored):
    stored.email = "changed@example.com"

    with pytest.raises(TypeError):
        stored.save()
    assert Referral.objects.get(pk=stored.pk).email == "kept@example.com"


def test_updating_referrals_in_bulk_raises(stored):
    with pytest.raises(TypeError):
        Referral.objects.update(email="changed@example.com")
    with pytest.raises(TypeError):
        Referral.objects.filter(pk=stored.pk).update(email="changed@example.com")
    stored.email = "changed@example.com"
    with pytest.raises(TypeError), transaction.atomic():  # bulk_update runs in a transaction
        Referral.objects.bulk_update([stored], ["email"])
    assert Referral.objects.get(pk=stored.pk).email == "kept@example.com"


def test_a_new_instance_with_a_stored_pk_does_not_overwrite_the_row(stored):
    clone = Referral(
        pk=stored.pk, client=stored.client, campaign=stored.campaign,
        external_id=stored.external_id, email="changed@example.com",
        opted_in_at=stored.opted_in_at,
    )  # fmt: skip

    with pytest.raises(TypeError):
        clone.save()
    assert Referral.objects.get(pk=stored.pk).email == "kept@example.com"


# --- schema ---------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_referrals_endpoint(manager_api):
    response = manager_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    operations = schema["paths"]["/api/v1/referrals/"]
    assert {"get", "post"} <= set(operations)
    assert {"200", "201", "207", "400", "413"} <= set(operations["post"]["responses"])
    assert "/api/v1/referrals/{id}/" in schema["paths"]


def test_the_api_docs_page_answers(client, manager):
    client.force_login(manager)
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# --- concurrency ----------------------------------------------------------------------------


def _skip_unless_postgres() -> None:
    # SQLite's in-memory test database is shared between threads through a shared cache, whose
    # table locks fail at once ("database table is locked") instead of waiting as the real
    # file database does; requests from two threads need PostgreSQL here.
    if connection.vendor != "postgresql":
        pytest.skip("concurrent requests need PostgreSQL in tests")


def _in_thread(work, results: list, barrier: threading.Barrier | None = None):
    def run():
        try:
            if barrier is not None:
                barrier.wait(timeout=30)
            results.append(work())
        except BaseException as exc:  # reported by the test, not lost in the thread
            results.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _raise_any(results: list) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_external_id_store_it_once(manager, client_a):
    _skip_unless_postgres()
    tokens_api = [api_client_for(manager), api_client_for(manager)]
    for round_ in range(5):
        record = referral_record(client_a, campaign=f"race-{round_}")
        barrier = threading.Barrier(2)
        results: list = []
        threads = [
            _in_thread(lambda api=api, record=record: post(api, record), results, barrier)
            for api in tokens_api
        ]
        for thread in threads:
            thread.join(60)
        _raise_any(results)

        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 201], [r.content for r in results]
        by_status = {r.status_code: r.json()["results"][0] for r in results}
        stored = Referral.objects.get(client=client_a, external_id=record["external_id"])
        assert by_status[201] == {"index": 0, "status": "created", "id": stored.pk,
                                  "external_id": record["external_id"]}  # fmt: skip
        assert by_status[200]["status"] == "duplicate"
        assert by_status[200]["id"] == stored.pk
        assert Campaign.objects.filter(client=client_a, external_id=f"race-{round_}").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_batches_racing_in_opposite_orders_store_each_record_once(manager, client_a):
    _skip_unless_postgres()
    # campaigns exist already: the requests meet only on the referrals' unique key
    for i in range(7):
        Campaign.objects.create(client=client_a, external_id=f"c-{i}", name=f"C {i}")
    records = [referral_record(client_a, campaign=f"c-{i % 7}") for i in range(1000)]
    barrier = threading.Barrier(2)
    results: list = []
    threads = [
        _in_thread(lambda: post(api_client_for(manager), records), results, barrier),
        _in_thread(lambda: post(api_client_for(manager), records[::-1]), results, barrier),
    ]
    for thread in threads:
        thread.join(120)
    _raise_any(results)

    assert all(r.status_code in (200, 201) for r in results), [r.content[:500] for r in results]
    created = [
        item["external_id"]
        for r in results
        for item in r.json()["results"]
        if item["status"] == "created"
    ]
    assert sorted(created) == sorted(r["external_id"] for r in records)
    assert Referral.objects.filter(client=client_a).count() == 1000
    assert Campaign.objects.filter(client=client_a).count() == 7


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_blocked_by_an_uncommitted_insert_reports_a_duplicate(manager, client_a):
    """Deterministic race: the request inserts while another transaction holds the same
    external id uncommitted; PostgreSQL makes it wait, then fail on the unique constraint,
    and the service must answer "duplicate" with the winner's id, never a 500."""
    _skip_unless_postgres()
    record = referral_record(client_a)
    # the campaign exists already, so the request waits on the referral's unique key itself
    Campaign.objects.create(client=client_a, external_id=record["campaign"], name="c")
    results: list = []
    with transaction.atomic():
        [winner] = referrals_ingest(records=[record])
        assert winner.status == "created"
        thread = _in_thread(lambda: post(api_client_for(manager), record), results)
        _wait_until_blocked_on_a_lock()
    thread.join(60)
    _raise_any(results)

    [response] = results
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [
        {"index": 0, "status": "duplicate", "id": winner.id, "external_id": record["external_id"]}
    ]
    assert Referral.objects.filter(client=client_a).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_caught_in_a_deadlock_is_rerun_not_failed(manager, client_a):
    """Another writer holds "z" and then wants "a", which the request holds while it waits for
    "z": PostgreSQL aborts the request's transaction (it waited first), and the service must
    rerun it and answer with the other writer's ids, never a 500."""
    _skip_unless_postgres()
    Campaign.objects.create(client=client_a, external_id="camp-1", name="c")
    first, last = (
        referral_record(client_a, external_id="a"),
        referral_record(client_a, external_id="z"),
    )
    results: list = []
    with transaction.atomic():
        [z] = referrals_ingest(records=[last])
        thread = _in_thread(lambda: post(api_client_for(manager), [last, first]), results)
        _wait_until_blocked_on_a_lock()  # the request has inserted "a" and waits for "z"
        [a] = referrals_ingest(records=[first])  # waits for "a" until the request is aborted
    thread.join(60)
    _raise_any(results)

    [response] = results
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [
        {"index": 0, "status": "duplicate", "id": z.id, "external_id": "z"},
        {"index": 1, "status": "duplicate", "id": a.id, "external_id": "a"},
    ]
    assert (z.status, a.status) == ("created", "created")
    assert Referral.objects.filter(client=client_a).count() == 2


def _wait_until_blocked_on_a_lock(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            # inside a transaction pg_stat_activity is a snapshot, unless cleared
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the request never waited on the uncommitted insert")


def test_a_client_user_of_a_client_without_referrals_sees_none(client_a):
    other = make_client("charlie")
    user = client_user_create(client=other, username="carol", password=PASSWORD)
    _store_at(client_a, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))

    assert api_client_for(user).get(URL).json()["results"] == []


def test_an_empty_body_is_refused_as_a_whole(manager_api):
    response = manager_api.generic("POST", URL, b"", content_type="application/json")
    assert response.status_code == 400
    assert "empty" in str(response.json())
    assert not Referral.objects.exists()
