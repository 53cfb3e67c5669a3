"""Every query parameter of the API is documented with its real type and range, and a value
outside them is refused with 400 naming the parameter: never ignored (a different answer
than the one asked for) and never a 500."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from drf_spectacular.generators import SchemaGenerator

from customfields.models import CustomField
from deliveries.models import Attempt, Batch
from referrals.api.query import EMPTY, NOT_BOOLEAN, NOT_DATE_TIME, NOT_INTEGER, REPEATED
from referrals.models import Campaign, Referral
from tests.factories import make_file_delivery, make_referral, referral_record

pytestmark = pytest.mark.django_db

REFERRALS = "/api/v1/referrals/"
DELIVERIES = "/api/v1/deliveries/"
CUSTOM_FIELDS = "/api/v1/custom-fields/"
HUGE = "3045506651288376442880"


@pytest.fixture(scope="module")
def published():
    return SchemaGenerator().get_schema(request=None, public=True)


def refused(response, name: str, message: str | None = None) -> list[str]:
    """The messages of a 400 that names ``name`` alone."""
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert list(body) == [name], body
    if message is not None:
        assert message in body[name], body
    return body[name]


def _query_parameters(published) -> dict[tuple[str, str], dict]:
    return {
        (path, parameter["name"]): parameter
        for path, operations in published["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }


# --- the schema -------------------------------------------------------------------------------


def test_every_query_parameter_documents_its_range(published):
    parameters = _query_parameters(published)
    assert {name for _, name in parameters} == {
        "client", "campaign", "created_after", "created_before", "cursor", "page_size",
        "kind", "active", "referral", "limit", "offset",
    }  # fmt: skip
    for (path, name), parameter in parameters.items():
        schema = parameter["schema"]
        if schema["type"] == "integer":
            assert {"minimum", "maximum"} <= set(schema), (path, name)
        elif schema["type"] == "string":
            assert {"pattern", "enum", "format"} & set(schema), (path, name)
        else:
            assert schema["type"] == "boolean", (path, name)
        assert not parameter.get("allowEmptyValue"), (path, name)


def test_the_documented_ranges_are_the_enforced_ones(published):
    parameters = _query_parameters(published)
    paged = ("/api/v1/deliveries/{id}/attempts/", "/api/v1/deliveries/{id}/batches/")
    for path in paged:
        assert parameters[(path, "limit")]["schema"]["minimum"] == 1
        assert parameters[(path, "limit")]["schema"]["maximum"] == 1000
        assert parameters[(path, "offset")]["schema"]["minimum"] == 0
        assert parameters[(path, "offset")]["schema"]["maximum"] == 2**31 - 1
    page_size = parameters[("/api/v1/referrals/", "page_size")]["schema"]
    assert (page_size["minimum"], page_size["maximum"]) == (1, 1000)
    referral = parameters[("/api/v1/deliveries/{id}/attempts/", "referral")]["schema"]
    assert (referral["minimum"], referral["maximum"]) == (1, 2**63 - 1)
    assert parameters[("/api/v1/deliveries/", "active")]["schema"] == {"type": "boolean"}
    for name in ("created_after", "created_before"):
        assert parameters[("/api/v1/referrals/", name)]["schema"]["format"] == "date-time"
    # an invalid cursor answers 404, which the list documents
    assert "404" in published["paths"]["/api/v1/referrals/"]["get"]["responses"]


# --- any parameter: given twice, or given empty -------------------------------------------------


@pytest.fixture
def world(client_a):
    referral = make_referral(client_a)
    delivery = make_file_delivery(client_a)
    return {"referral": referral, "delivery": delivery}


VALID = {
    "client": "alpha", "campaign": "camp-1", "created_after": "2024-01-01T00:00:00Z",
    "created_before": "2024-01-01T00:00:00Z", "page_size": "10", "kind": "sftp",
    "active": "true", "referral": "1", "limit": "10", "offset": "0",
}  # fmt: skip


def _every_parameter(published, world):
    delivery = world["delivery"].pk
    for (path, name), _ in _query_parameters(published).items():
        if name == "cursor":
            continue  # a valid cursor comes from a page: below
        url = path.replace("{id}", str(delivery))
        valid = "value_map" if (path, name) == ("/api/v1/custom-fields/", "kind") else VALID[name]
        yield url, name, valid


def test_each_parameter_given_once_and_valid_is_accepted(manager_api, published, world):
    for url, name, valid in _every_parameter(published, world):
        response = manager_api.get(url, {name: valid})
        assert response.status_code == 200, (url, name, response.content)


def test_each_parameter_given_twice_is_refused(manager_api, published, world):
    for url, name, valid in _every_parameter(published, world):
        # both valid, or one not: either way, which one was meant is not for us to pick
        assert refused(manager_api.get(f"{url}?{name}={valid}&{name}={valid}"), name) == [REPEATED]
        refused(manager_api.get(f"{url}?{name}={valid}&{name}=null"), name, REPEATED)
    refused(manager_api.get(f"{REFERRALS}?cursor=cD0x&cursor=cD0x"), "cursor", REPEATED)


def test_each_parameter_given_empty_is_refused(manager_api, published, world):
    for url, name, _ in _every_parameter(published, world):
        assert refused(manager_api.get(f"{url}?{name}="), name) == [EMPTY]
    assert refused(manager_api.get(f"{REFERRALS}?cursor="), "cursor") == [EMPTY]


# --- referrals: page size, cursor and filters -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "Ensure this value is greater than or equal to 1."),
        ("-1", "Ensure this value is greater than or equal to 1."),
        ("1001", "Ensure this value is less than or equal to 1000."),
        (HUGE, "Ensure this value is less than or equal to 1000."),
        ("null", NOT_INTEGER),
        ("1.5", NOT_INTEGER),
        (" 5", NOT_INTEGER),
        ("5_0", NOT_INTEGER),
        ("\u0665", NOT_INTEGER),  # an Arabic-Indic five, which int() would take
    ],
)
def test_a_page_size_outside_1_to_1000_is_refused(manager_api, db, value, message):
    assert refused(manager_api.get(REFERRALS, {"page_size": value}), "page_size") == [message]


def test_a_page_size_within_range_sizes_the_page(manager_api, client_a):
    for _ in range(3):
        make_referral(client_a)

    first = manager_api.get(REFERRALS, {"page_size": 2}).json()
    assert len(first["results"]) == 2
    rest = manager_api.get(first["next"]).json()
    assert len(rest["results"]) == 1
    assert len(manager_api.get(REFERRALS, {"page_size": 1000}).json()["results"]) == 3


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "nonsense",  # no base64 padding
        "c@D0x",  # a character outside base64 (b64decode would have skipped it)
        "////",  # not ASCII once decoded
        _cursor("p=1"),  # a position that is no time
        _cursor("p=2024-01-01 00:00:00\x00"),
        _cursor("o=-5"),
        _cursor("r=x"),
    ],
)
def test_a_cursor_no_page_gave_answers_404(manager_api, client_a, cursor):
    make_referral(client_a)

    response = manager_api.get(REFERRALS, {"cursor": cursor})

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_a_cursor_from_a_page_still_works(manager_api, client_a):
    for _ in range(3):
        make_referral(client_a)
    url = manager_api.get(REFERRALS, {"page_size": 2}).json()["next"]
    cursor = url.split("cursor=")[1].split("&")[0]
    assert manager_api.get(url).status_code == 200
    assert cursor  # what the page links is what the schema's pattern describes


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01",  # a date, not a date-time
        "2024-03-01T00:00:00",  # no offset: which time would it be?
        "2024-03-01 00:00:00Z",
        "2024-03-01T00:00Z",
        "2024-03-01T00:00:00+24:00",
        "2024-03-01T00:00:00.Z",
        "2024-01-01T12:99:00Z",
        "2024-03-01T12:00:60Z",  # a leap second only at 23:59:60 UTC
        "9999-12-31T23:59:60-12:00",  # 11:59:60 UTC, past year 9999
        "0000-01-01T00:00:00Z",
        "null",
    ],
)
def test_a_time_that_is_no_rfc3339_date_time_is_refused(manager_api, db, name, value):
    assert refused(manager_api.get(REFERRALS, {name: value}), name) == [NOT_DATE_TIME]


def _stored_at(client, created_at: dt.datetime) -> Referral:
    """A referral with a chosen storage time: an insert, which immutability allows."""
    record = referral_record(client)
    campaign, _ = Campaign.objects.get_or_create(
        client=client, external_id=record.pop("campaign"), defaults={"name": "c"}
    )
    record.pop("client")
    return Referral.objects.create(
        client=client, campaign=campaign, created_at=created_at, **record
    )


def test_every_rfc3339_date_time_is_taken(manager_api, client_a):
    # stored at midnight UTC, just after the leap second 2016-12-31T23:59:60Z
    stored = _stored_at(client_a, dt.datetime(2017, 1, 1, tzinfo=dt.UTC))

    def ids(**params) -> list[int]:
        response = manager_api.get(REFERRALS, params)
        assert response.status_code == 200, (params, response.content)
        return [r["id"] for r in response.json()["results"]]

    # beyond the representable instants: still valid date-times, before or after everything
    assert ids(created_after="9999-12-31T23:59:59-12:00") == []
    assert ids(created_before="9999-12-31T23:59:59-12:00") == [stored.pk]
    assert ids(created_before="0001-01-01T00:00:00+12:00") == []
    assert ids(created_after="0001-01-01T00:00:00+12:00") == [stored.pk]
    # a leap second ends its minute: midnight is at or after it, not before it
    assert ids(created_after="2016-12-31T23:59:60Z") == [stored.pk]
    assert ids(created_before="2016-12-31T23:59:60Z") == []
    assert ids(created_after="2017-01-01T00:59:60+01:00") == [stored.pk]
    # lower case t and z, a fraction finer than microseconds, a -00:00 offset
    assert ids(created_before="2017-01-01t00:00:00.000000999z") == []
    assert ids(created_before="2017-01-01T00:00:00.0000019Z") == [stored.pk]
    assert ids(created_after="2017-01-01T00:00:00-00:00") == [stored.pk]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"client": "not a slug!"}, "client"),
        ({"client": " alpha"}, "client"),  # not trimmed into another slug
        ({"client": "a" * 101}, "client"),
        ({"client": "alpha\x00"}, "client"),
        ({"campaign": "c" * 101}, "campaign"),
        ({"campaign": "camp\x00"}, "campaign"),
    ],
)
def test_a_client_or_campaign_outside_its_pattern_is_refused(manager_api, db, params, name):
    refused(manager_api.get(REFERRALS, params), name)


def test_text_filters_compare_the_value_as_given(manager_api, client_a):
    make_referral(client_a, campaign="camp-1")

    assert len(manager_api.get(REFERRALS, {"campaign": "camp-1"}).json()["results"]) == 1
    assert manager_api.get(REFERRALS, {"campaign": " camp-1"}).json()["results"] == []
    assert manager_api.get(REFERRALS, {"client": "nobody"}).json()["results"] == []


def test_a_client_user_filters_only_within_its_own_client(api_a, client_a, client_b):
    own = make_referral(client_a)
    make_referral(client_b)

    def ids(**params) -> list[int]:
        response = api_a.get(REFERRALS, params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [own.pk]
    assert ids(client="bravo") == []
    assert ids(client="alpha", page_size=1000) == [own.pk]
    refused(api_a.get(REFERRALS, {"client": "bravo", "page_size": 0}), "page_size")


# --- deliveries and custom fields: booleans and enums ----------------------------------------


@pytest.mark.parametrize(
    "query",
    ["active=null", "active=yes", "active=True", "active=1", "active=0", "active=on",
     "active=null&active=null", "active=true&active=null", "active=true&active=false"],
)  # fmt: skip
def test_active_is_true_or_false_only(manager_api, db, query):
    messages = refused(manager_api.get(f"{DELIVERIES}?{query}"), "active")
    assert set(messages) <= {NOT_BOOLEAN, REPEATED}


def test_active_filters_and_a_client_user_sees_only_its_own(manager_api, api_a, client_a, client_b):
    on = make_file_delivery(client_a)
    off = make_file_delivery(client_a, active=False)
    theirs = make_file_delivery(client_b)

    def ids(api, **params) -> set[int]:
        response = api.get(DELIVERIES, params)
        assert response.status_code == 200, response.content
        return {d["id"] for d in response.json()}

    assert ids(manager_api, active="true") == {on.pk, theirs.pk}
    assert ids(manager_api, active="false") == {off.pk}
    assert ids(manager_api, active="true", client="bravo", kind="sftp") == {theirs.pk}
    assert ids(api_a, active="true") == {on.pk}
    assert ids(api_a, client="bravo") == set()


@pytest.mark.parametrize("url", [DELIVERIES, CUSTOM_FIELDS])
@pytest.mark.parametrize("value", ["0", "null", "SFTP", "Constant"])
def test_a_kind_outside_its_enum_is_refused(manager_api, db, url, value):
    [message] = refused(manager_api.get(url, {"kind": value}), "kind")
    assert "valid choice" in message


def test_custom_fields_filter_by_kind_and_client(manager_api, api_a, client_a, client_b):
    mine = CustomField.objects.create(client=client_a, name="c", kind="constant", constant="x")
    CustomField.objects.create(client=client_b, name="c", kind="constant", constant="y")

    response = api_a.get(CUSTOM_FIELDS, {"kind": "constant"})
    assert [f["id"] for f in response.json()] == [mine.pk]
    assert api_a.get(CUSTOM_FIELDS, {"client": "bravo"}).json() == []
    assert manager_api.get(CUSTOM_FIELDS, {"kind": "hash"}).json() == []


# --- a delivery's attempts and batches: limit, offset, referral --------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("limit", HUGE, "Ensure this value is less than or equal to 1000."),
        ("limit", "1001", "Ensure this value is less than or equal to 1000."),
        ("limit", "0", "Ensure this value is greater than or equal to 1."),
        ("limit", "null", NOT_INTEGER),
        ("offset", "-1", "Ensure this value is greater than or equal to 0."),
        ("offset", str(2**31), "Ensure this value is less than or equal to 2147483647."),
        ("offset", HUGE, "Ensure this value is less than or equal to 2147483647."),
        ("offset", "null", NOT_INTEGER),
        ("offset", "1e3", NOT_INTEGER),
    ],
)
@pytest.mark.parametrize("action", ["attempts", "batches"])
def test_limit_and_offset_outside_their_range_are_refused(
    manager_api, client_a, action, name, value, message
):
    delivery = make_file_delivery(client_a)
    url = f"{DELIVERIES}{delivery.pk}/{action}/"
    assert refused(manager_api.get(url, {name: value}), name) == [message]


def test_batches_page_by_limit_and_offset(manager_api, api_a, client_a):
    delivery = make_file_delivery(client_a)
    for number in (1, 2, 3):
        Batch.objects.create(delivery=delivery, number=number, run_at=dt.datetime.now(dt.UTC))
    url = f"{DELIVERIES}{delivery.pk}/batches/"

    def numbers(api, **params) -> list[int]:
        response = api.get(url, params)
        assert response.status_code == 200, response.content
        return [b["number"] for b in response.json()["results"]]

    assert numbers(manager_api) == [3, 2, 1]
    assert numbers(manager_api, limit=1, offset=1) == [2]
    assert numbers(manager_api, limit=1000, offset=2**31 - 1) == []
    assert numbers(api_a, limit=2) == [3, 2]  # the client's own delivery


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("null", NOT_INTEGER),
        ("abc", NOT_INTEGER),
        ("1.0", NOT_INTEGER),
        ("\u00b2", NOT_INTEGER),  # a superscript two
        ("0", "Ensure this value is greater than or equal to 1."),
        ("-1", "Ensure this value is greater than or equal to 1."),
        (str(2**63), f"Ensure this value is less than or equal to {2**63 - 1}."),
        (HUGE, f"Ensure this value is less than or equal to {2**63 - 1}."),
    ],
)
def test_a_referral_that_is_no_id_is_refused(manager_api, client_a, value, message):
    delivery = make_file_delivery(client_a, kind="api")
    url = f"{DELIVERIES}{delivery.pk}/attempts/"
    assert refused(manager_api.get(url, {"referral": value}), "referral") == [message]


def test_attempts_filter_by_referral_and_page(manager_api, api_a, client_a):
    delivery = make_file_delivery(client_a, kind="api")
    one, other = make_referral(client_a), make_referral(client_a)
    for referral in (one, one, other):
        Attempt.objects.create(delivery=delivery, referral_id=referral.pk, method="POST",
                               url="https://example.com/", outcome="delivered")  # fmt: skip
    url = f"{DELIVERIES}{delivery.pk}/attempts/"

    def count(api, **params) -> int:
        response = api.get(url, params)
        assert response.status_code == 200, response.content
        return len(response.json()["results"])

    assert count(manager_api, referral=one.pk) == 2
    assert count(manager_api, referral=other.pk, limit=1) == 1
    assert count(manager_api, referral=2**63 - 1) == 0
    assert count(api_a, referral=one.pk, offset=1) == 1
