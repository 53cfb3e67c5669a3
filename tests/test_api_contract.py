"""The published schema (/api/schema/) tells the truth about what the API answers: the
shapes of deliveries and of paged lists, and one documented shape for every error."""

from __future__ import annotations

import re

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator

from referrals.models import Referral
from tests.contract_helpers import body_validator, response_validator, served_schema, validator
from tests.factories import make_file_delivery, referral_record

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def published():
    return SchemaGenerator().get_schema(request=None, public=True)


def _component(published, ref: str) -> dict:
    return published["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _ok_schema(published, path: str) -> dict:
    return published["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]


@pytest.mark.parametrize("reader", ["manager_api", "api_a"])
def test_schedule_time_reads_as_the_schema_says(request, reader, client_a):
    api = request.getfixturevalue(reader)
    delivery = make_file_delivery(client_a)
    body = api.get(f"/api/v1/deliveries/{delivery.pk}/").json()
    served = api.get("/api/schema/?format=json").json()  # as this reader's schema says
    documented = _ok_schema(served, "/api/v1/deliveries/{id}/")
    pattern = _component(served, documented["$ref"])["properties"]["schedule_time"]["pattern"]
    assert body["schedule_time"] == "06:00"
    assert re.fullmatch(pattern, body["schedule_time"])


def test_a_schedule_time_the_schema_refuses_is_refused(manager_api, client_a):
    delivery = make_file_delivery(client_a)
    for typed in ("6:00", "06:00:00", "24:00"):
        response = manager_api.patch(
            f"/api/v1/deliveries/{delivery.pk}/",
            {"kind": "sftp", "schedule_time": typed},
            format="json",
        )
        assert response.status_code == 400, typed
        assert "schedule_time" in response.json()


@pytest.mark.parametrize("action", ["attempts", "batches"])
def test_a_deliverys_pages_are_documented_as_pages(manager_api, published, client_a, action):
    delivery = make_file_delivery(client_a)
    body = manager_api.get(f"/api/v1/deliveries/{delivery.pk}/{action}/").json()
    paged = _ok_schema(published, f"/api/v1/deliveries/{{id}}/{action}/")
    documented = _component(published, paged["$ref"])
    assert set(body) == set(documented["properties"]) == {"count", "next", "previous", "results"}


def test_every_operation_documents_its_errors_in_one_shape(published):
    error = "#/components/schemas/Error"
    for path, operations in published["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code in ("401", "403"):
                assert error in str(responses[code]), (method, path, code)
            if method != "get":
                assert error in str(responses["400"]), (method, path)
            if "{id}" in path:
                assert error in str(responses["404"]), (method, path)


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda api: api.post("/api/v1/referrals/", b"", content_type="application/json"), 400),
        (lambda api: api.post("/api/v1/referrals/", b"{", content_type="application/json"), 400),
        (lambda api: api.get("/api/v1/deliveries/?kind=0"), 400),
        (lambda api: api.get("/api/v1/referrals/?created_after=yesterday"), 400),
        (lambda api: api.get("/api/v1/referrals/?cursor=nonsense"), 404),
        (lambda api: api.get("/api/v1/deliveries/999999/"), 404),
        (lambda api: api.post("/api/v1/referrals/", b"x=1", content_type="text/plain"), 415),
        (lambda api: api.get("/api/v1/deliveries/-3.5e-267/"), 404),  # no route matches
        (
            lambda api: api.post(
                "/api/v1/custom-fields/",
                b"client=alpha&name=x",
                content_type="application/x-www-form-urlencoded",
            ),
            415,
        ),
    ],
)
def test_errors_answer_in_the_documented_shape(manager_api, published, call, status):
    response = call(manager_api)
    assert response.status_code == status
    jsonschema.validate(response.json(), published["components"]["schemas"]["Error"])


def test_every_request_body_is_json_only(published):
    for path, operations in published["paths"].items():
        for operation in operations.values():
            if "requestBody" in operation:
                assert list(operation["requestBody"]["content"]) == ["application/json"], path


def test_each_kind_has_an_enum_named_after_what_it_sorts(published):
    schemas = published["components"]["schemas"]
    assert schemas["CustomFieldKindEnum"]["enum"][0] == "value_map"
    assert schemas["DeliveryKindEnum"]["enum"] == ["api", "sftp", "ftps"]
    assert schemas["BatchKindEnum"]["enum"] == ["new", "redelivery"]


def test_a_page_outside_the_api_still_answers_djangos_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_client_users_write_answers_403_in_the_documented_shape(api_a, published, client_a):
    delivery = make_file_delivery(client_a)
    response = api_a.patch(f"/api/v1/deliveries/{delivery.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 403
    jsonschema.validate(response.json(), published["components"]["schemas"]["Error"])


def test_ingestion_documents_one_object_or_a_list(manager_api, client_a):
    served = manager_api.get("/api/schema/?format=json").json()
    body = served["paths"]["/api/v1/referrals/"]["post"]["requestBody"]["content"]
    documented = _component(served, body["application/json"]["schema"]["$ref"])
    resolver = jsonschema.validators.RefResolver.from_schema(served)
    validator = jsonschema.Draft202012Validator(documented, resolver=resolver)
    record = {"client": client_a.slug, "campaign": "c1", "external_id": "x-1",
              "opted_in_at": "2026-12-01T10:00:00Z"}  # fmt: skip
    for payload in (record, [record, {**record, "external_id": "x-2"}]):
        assert validator.is_valid(payload), payload  # the schema takes both
        assert manager_api.post("/api/v1/referrals/", payload, format="json").status_code == 201


INGEST = "/api/v1/referrals/"


def _ingest(api, payload):
    return api.post(INGEST, payload, format="json")


def test_a_phone_and_postcode_sent_as_numbers_are_stored_as_their_digits(manager_api, client_a):
    served = served_schema(manager_api)
    record = referral_record(client_a, mobile=447700900123, zip_code=10115, extra=None)
    assert body_validator(served, INGEST, "post").is_valid(record)

    response = _ingest(manager_api, record)

    assert response.status_code == 201
    response_validator(served, INGEST, "post", 201).validate(response.json())
    stored = Referral.objects.get(external_id=record["external_id"])
    assert (stored.mobile, stored.zip_code, stored.extra) == ("447700900123", "10115", {})
    read = manager_api.get(f"{INGEST}{stored.pk}/")
    response_validator(served, f"{INGEST}{{id}}/", "get", 200).validate(read.json())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mobile": 7.5}, "mobile"),  # a number with a fraction is no phone
        ({"zip_code": 10**20}, "zip_code"),  # its digits would not fit
        ({"country": 44}, "country"),  # a code, never a number
        ({"external_id": None}, "external_id"),
        ({"campaign": "  "}, "campaign"),
        ({"age": "40"}, "age"),
        ({"nickname": "Ada"}, "nickname"),  # further attributes belong in extra
        ({"extra": ["a"]}, "extra"),
        ({"ip_address": ""}, "ip_address"),
        ({"city": "x" + " " * 100}, "city"),  # longer than documented, padding included
    ],
)
def test_a_record_the_schema_refuses_is_refused_naming_the_field(manager_api, client_a,
                                                                 overrides, field):  # fmt: skip
    served = served_schema(manager_api)
    record = {**referral_record(client_a), **overrides}
    assert not body_validator(served, INGEST, "post").is_valid(record)

    response = _ingest(manager_api, record)

    assert response.status_code == 400
    response_validator(served, INGEST, "post", 400).validate(response.json())
    [result] = response.json()["results"]
    assert field in {error["field"] for error in result["errors"]}


def test_a_list_holds_one_to_the_setting_records(manager_api, client_a, settings):
    settings.INGEST_MAX_RECORDS = 2
    served = served_schema(manager_api)
    documented = body_validator(served, INGEST, "post")
    records = [referral_record(client_a) for _ in range(3)]
    for payload in ([], records):
        assert not documented.is_valid(payload)
        response = _ingest(manager_api, payload)
        assert response.status_code == 400
        validator(served, "Error").validate(response.json())
    assert documented.is_valid(records[:2])
    assert _ingest(manager_api, records[:2]).status_code == 201


def test_some_invalid_records_answer_207_as_documented(manager_api, client_a):
    served = served_schema(manager_api)
    payload = [referral_record(client_a), {**referral_record(client_a), "age": -1}]

    response = _ingest(manager_api, payload)

    assert response.status_code == 207
    response_validator(served, INGEST, "post", 207).validate(response.json())
    created, invalid = response.json()["results"]
    assert (created["status"], invalid["status"]) == ("created", "invalid")


def test_too_large_and_unsupported_bodies_answer_in_the_documented_shape(manager_api, client_a,
                                                                         settings):  # fmt: skip
    settings.INGEST_MAX_BODY_BYTES = 1024
    served = served_schema(manager_api)
    too_large = _ingest(manager_api, referral_record(client_a, ad_text="x" * 2000))
    wrong_type = manager_api.post(INGEST, b"a,b", content_type="text/csv")

    assert (too_large.status_code, wrong_type.status_code) == (413, 415)
    response_validator(served, INGEST, "post", 413).validate(too_large.json())
    response_validator(served, INGEST, "post", 415).validate(wrong_type.json())
