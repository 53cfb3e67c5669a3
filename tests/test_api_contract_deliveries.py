"""The delivery operations keep their contract: a body the served schema (/api/schema/) calls
valid is taken, one it refuses is refused naming the field, a state conflict is a 409, and
every answer has the documented shape."""

from __future__ import annotations

import datetime as dt

import jsonschema
import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries import setting_patterns
from deliveries.filenames import file_name_check
from deliveries.models import Attempt, Batch, Delivery
from deliveries.outcomes import accepted_status, accepted_statuses_error
from deliveries.signing import signing_secret_error
from deliveries.transports import ftps, sftp
from deliveries.transports.base import PermanentTransportError
from deliveries.transports.http import address_problem
from tests.contract_helpers import json_schema
from tests.factories import make_api_delivery, make_file_delivery, make_referral

pytestmark = pytest.mark.django_db
API = "/api/v1/deliveries/"
FINGERPRINT = "SHA256:" + "w" * 43
MINIMAL = {
    "api": {"kind": "api", "url": "https://crm.example.com/leads"},
    "sftp": {"kind": "sftp", "host": "files.example.com", "username": "drop",
             "password": "pw-qz9", "host_key": FINGERPRINT, "schedule_time": "06:00"},
    "ftps": {"kind": "ftps", "host": "files.example.com", "username": "drop",
             "password": "pw-qz9", "schedule_kind": "interval", "schedule_every_minutes": 15},
}  # fmt: skip


@pytest.fixture
def served(manager_api) -> dict:
    return json_schema(manager_api.get("/api/schema/?format=json").json())


def _validator(served: dict, schema: dict) -> jsonschema.Draft202012Validator:
    # The served components ride along, so that "#/components/..." resolves in them.
    return jsonschema.Draft202012Validator({**schema, "components": served["components"]})


def validator(served: dict, name: str) -> jsonschema.Draft202012Validator:
    return _validator(served, {"$ref": f"#/components/schemas/{name}"})


def answer_schema(served: dict, path: str, method: str, status: int) -> dict:
    responses = served["paths"][path][method]["responses"]
    return responses[str(status)]["content"]["application/json"]["schema"]


def assert_documented(served: dict, path: str, method: str, response) -> None:
    schema = answer_schema(served, path, method, response.status_code)
    _validator(served, schema).validate(response.json())


@pytest.mark.parametrize("kind", ["api", "sftp", "ftps"])
def test_the_smallest_body_the_schema_takes_for_each_kind_creates_it(
    manager_api, served, client_a, kind
):
    body = {"client": client_a.slug, "name": f"{kind} one", **MINIMAL[kind]}
    validator(served, "DeliveryCreate").validate(body)
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 201, response.json()
    assert_documented(served, API, "post", response)
    assert response.json()["kind"] == kind


def test_a_reason_longer_than_documented_is_refused_even_padded_with_space(manager_api, client_a):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    padded = {"reason": "x" + "\r" * 2000}  # DRF would measure it after trimming: 1
    response = manager_api.post(f"{API}{delivery.pk}/pause/", padded, format="json")
    assert response.status_code == 400 and "reason" in response.json()
    delivery.refresh_from_db()
    assert delivery.paused_at is None


@pytest.mark.parametrize("password", ["  pw with spaces  ", "   "])
def test_a_password_is_kept_as_typed_spaces_included(manager_api, client_a, password):
    body = {"client": client_a.slug, "name": "drop", **MINIMAL["ftps"], "password": password}
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 201, response.json()
    assert Delivery.objects.get(pk=response.json()["id"]).password == password


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("api", "url"), ("sftp", "host_key"), ("ftps", "password"), ("sftp", "schedule_time")],
)
def test_a_setting_a_kind_requires_is_required_by_the_schema_and_the_api(
    manager_api, served, client_a, kind, missing
):
    body = {"client": client_a.slug, "name": "Incomplete", **MINIMAL[kind]}
    del body[missing]
    assert not validator(served, "DeliveryCreate").is_valid(body)
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()


def test_what_an_auth_kind_needs_is_required_by_the_schema_and_the_api(
    manager_api, served, client_a
):
    body = {"client": client_a.slug, "name": "CRM", **MINIMAL["api"], "auth_kind": "basic",
            "auth_secret": "pw"}  # fmt: skip
    assert not validator(served, "DeliveryCreate").is_valid(body)
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 400 and "auth_username" in response.json()
    body["auth_username"] = "crm-user"
    validator(served, "DeliveryCreate").validate(body)
    assert manager_api.post(API, body, format="json").status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", 5), ("active", "yes"), ("port", "22"), ("connect_timeout", "5"),
     ("campaigns", ["1"]), ("kind", 1), ("client", 7), ("password", 123)],
)  # fmt: skip
def test_a_value_of_another_json_type_is_refused_naming_the_field(
    manager_api, client_a, field, value
):
    body = {"client": client_a.slug, "name": "Typed", **MINIMAL["sftp"], field: value}
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("field", ["name", "columns", "connect_timeout", "active", "kind"])
def test_null_for_a_setting_that_cannot_be_null_is_refused_naming_it(manager_api, client_a, field):
    body = {"client": client_a.slug, "name": "Nulls", **MINIMAL["api"], field: None}
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("action", "body"),
    [("pause", {"reason": 0}), ("replay", {"referral": "1"}),
     ("replay", {"not_delivered": "true"}), ("redeliver", {"start": 0, "end": 1})],
)  # fmt: skip
def test_an_actions_body_of_another_json_type_is_refused(manager_api, client_a, action, body):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    response = manager_api.post(f"{API}{delivery.pk}/{action}/", body, format="json")
    assert response.status_code == 400
    assert set(body) & set(response.json()), response.json()


def test_a_name_taken_for_the_client_is_a_conflict(manager_api, served, client_a, client_b):
    body = {"client": client_a.slug, "name": "Nightly", **MINIMAL["sftp"]}
    assert manager_api.post(API, body, format="json").status_code == 201
    twin = manager_api.post(API, {**body, "name": "NIGHTLY"}, format="json")
    assert twin.status_code == 409
    assert twin.json()["name"] == ["This client already has a delivery of that name."]
    assert_documented(served, API, "post", twin)
    elsewhere = manager_api.post(API, {**body, "client": client_b.slug}, format="json")
    assert elsewhere.status_code == 201  # names are per client


@pytest.mark.parametrize("action", ["replay", "rotate-secret"])
def test_a_real_time_action_on_a_file_delivery_is_a_conflict(manager_api, served, client_a, action):
    delivery = make_file_delivery(client_a)
    path = f"{API}{{id}}/{action}/"
    response = manager_api.post(f"{API}{delivery.pk}/{action}/", {"not_delivered": True},
                                format="json")  # fmt: skip
    assert response.status_code == 409
    assert "real-time" in response.json()["detail"]
    assert_documented(served, path, "post", response)


def test_a_patch_names_the_kind_and_keeps_it(manager_api, served, client_a):
    delivery = make_file_delivery(client_a, password="pw-qz9", host_key=FINGERPRINT)
    url = f"{API}{delivery.pk}/"
    kindless = manager_api.patch(url, {"name": "Renamed"}, format="json")
    assert kindless.status_code == 400 and "kind" in kindless.json()
    assert not validator(served, "DeliveryPatch").is_valid({"name": "Renamed"})
    other = {"kind": "api", "url": "https://crm.example.com/leads"}
    validator(served, "DeliveryPatch").validate(other)
    changed = manager_api.patch(url, other, format="json")
    assert changed.status_code == 409 and "kind" in changed.json()
    assert_documented(served, "/api/v1/deliveries/{id}/", "patch", changed)
    renamed = manager_api.patch(url, {"kind": "sftp", "name": "Renamed"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"


def test_a_patch_that_leaves_the_delivery_incomplete_names_the_setting(manager_api, client_a):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    response = manager_api.patch(f"{API}{delivery.pk}/", {"kind": "api", "auth_kind": "basic"},
                                 format="json")  # fmt: skip
    assert response.status_code == 400
    assert {"auth_username", "auth_secret"} <= set(response.json())
    delivery.refresh_from_db()
    assert delivery.auth_kind == "none"


def test_a_put_replaces_every_setting_but_secrets_client_and_start(manager_api, served, client_a):
    start = timezone.now() - dt.timedelta(days=3)
    delivery = make_api_delivery(
        client_a, "https://crm.example.com/leads", auth_kind="bearer", auth_secret="tok-qz9",
        max_in_flight=3, accepted_statuses="200", starts_at=start,
        columns=[{"source": "email", "output": "Email"}],
    )  # fmt: skip
    signing = delivery.signing_secret
    body = {"name": "CRM", "kind": "api", "url": "https://crm.example.com/v2",
            "auth_kind": "bearer"}  # fmt: skip
    validator(served, "DeliveryReplace").validate(body)
    response = manager_api.put(f"{API}{delivery.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    assert_documented(served, "/api/v1/deliveries/{id}/", "put", response)
    delivery.refresh_from_db()
    assert (delivery.max_in_flight, delivery.accepted_statuses, delivery.columns) == (8, "2xx", [])
    assert delivery.auth_secret == "tok-qz9" and delivery.signing_secret == signing
    assert delivery.client == client_a and delivery.starts_at == start
    assert "signing_secret" not in response.json()  # kept: not shown again


def test_a_put_cannot_move_a_delivery_to_another_client(manager_api, client_a, client_b):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    body = {"client": client_b.slug, "name": "CRM", "kind": "api", "url": delivery.url}
    response = manager_api.put(f"{API}{delivery.pk}/", body, format="json")
    assert response.status_code == 409 and "client" in response.json()


@pytest.mark.parametrize("spec", ["204-200", "200 - 204", "2xx, 301"])
def test_status_ranges_are_taken_either_way_round(manager_api, served, client_a, spec):
    body = {"client": client_a.slug, "name": "CRM", **MINIMAL["api"], "accepted_statuses": spec}
    validator(served, "DeliveryCreate").validate(body)
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 201, response.json()
    assert accepted_status(spec, 202) == ("2xx" in spec or "20" in spec)


@pytest.mark.parametrize("spec", ["600", "2xx,,201", "", "\uff12\uff10\uff10", "2_00", "abc"])
def test_a_status_list_the_schema_refuses_is_refused(manager_api, served, client_a, spec):
    body = {"client": client_a.slug, "name": "CRM", **MINIMAL["api"], "accepted_statuses": spec}
    assert not validator(served, "DeliveryCreate").is_valid(body)
    response = manager_api.post(API, body, format="json")
    assert response.status_code == 400 and "accepted_statuses" in response.json()


@pytest.mark.parametrize(
    ("body", "valid"),
    [({"referral": 1}, True), ({"not_delivered": True}, True),
     ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, True),
     ({"not_delivered": False}, False), ({"referral": 1, "not_delivered": False}, False),
     ({"start": "2026-01-01T00:00:00Z"}, False), ({"referral": 1, "extra": 1}, False), ({}, False)],
)  # fmt: skip
def test_replay_takes_exactly_one_of_its_forms(manager_api, served, client_a, body, valid):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    assert validator(served, "Replay").is_valid(body) is valid
    response = manager_api.post(f"{API}{delivery.pk}/replay/", body, format="json")
    assert response.status_code == (200 if valid else 400), response.json()
    assert_documented(served, f"{API}{{id}}/replay/", "post", response)


def test_replay_documents_its_body_as_required(manager_api, served, client_a):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    assert served["paths"][f"{API}{{id}}/replay/"]["post"]["requestBody"]["required"] is True
    assert manager_api.post(f"{API}{delivery.pk}/replay/").status_code == 400


def test_the_actions_answer_as_documented(manager_api, served, client_a):
    delivery = make_api_delivery(client_a, "https://crm.example.com/leads")
    person = make_referral(client_a)
    Attempt.objects.create(delivery=delivery, referral_id=person.pk, method="POST",
                           url=delivery.url, outcome="failed", error_class="timeout")  # fmt: skip
    window = {"start": (person.created_at - dt.timedelta(minutes=1)).isoformat(),
              "end": (person.created_at + dt.timedelta(minutes=1)).isoformat()}  # fmt: skip
    calls = [
        ("pause", "post", {"reason": "moving"}), ("resume", "post", None),
        ("redeliver", "post", window), ("rotate-secret", "post", None),
        ("attempts", "get", None), ("batches", "get", None), ("", "get", None),
    ]  # fmt: skip
    for action, method, body in calls:
        path = f"{API}{{id}}/{action}/" if action else f"{API}{{id}}/"
        url = path.replace("{id}", str(delivery.pk))
        response = getattr(manager_api, method)(url, body, format="json")
        assert response.status_code == 200, (action, response.json())
        assert_documented(served, path, method, response)


def test_a_file_deliverys_batches_answer_as_documented(manager_api, served, client_a):
    delivery = make_file_delivery(client_a)
    Batch.objects.create(delivery=delivery, number=1, run_at=timezone.now())  # not sent yet
    now = timezone.now()
    Batch.objects.create(delivery=delivery, number=2, run_at=now, status="sent", bytes=100,
                         started_at=now - dt.timedelta(seconds=2), finished_at=now)  # fmt: skip
    response = manager_api.get(f"{API}{delivery.pk}/batches/")
    assert_documented(served, f"{API}{{id}}/batches/", "get", response)
    sent, pending = response.json()["results"]
    assert (sent["duration_seconds"], sent["throughput_bytes_per_second"]) == (2.0, 50.0)
    assert pending["duration_seconds"] is None and pending["throughput_bytes_per_second"] is None


def test_a_client_user_reads_what_the_schema_documents_for_them(api_a, client_a):
    delivery = make_file_delivery(client_a)
    mine = json_schema(api_a.get("/api/schema/?format=json").json())
    response = api_a.get(f"{API}{delivery.pk}/")
    assert response.status_code == 200
    assert_documented(mine, f"{API}{{id}}/", "get", response)
    assert Delivery.objects.filter(pk=delivery.pk).exists()


# What the schema's patterns describe, the save's own parsers take (they cannot drift apart).
@pytest.mark.parametrize(
    ("pattern", "accepted"),
    [
        ("SIGNING_SECRET", lambda v: signing_secret_error(v) is None),
        ("URL", lambda v: address_problem(v) is None),
        ("HOST_KEY", lambda v: _parses(sftp.host_key_pin_parse, v)),
        ("CERTIFICATE_FINGERPRINT",
         lambda v: not v.strip() or _parses(ftps.certificate_fingerprint_normalise, v)),
        ("FILE_NAME_TEMPLATE", lambda v: _parses(file_name_check, v)),
        ("ACCEPTED_STATUSES", lambda v: accepted_statuses_error(v) is None),
    ],
)  # fmt: skip
def test_a_value_the_schemas_pattern_describes_is_one_the_save_takes(pattern, accepted):
    regex = getattr(setting_patterns, pattern)

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.from_regex(regex, fullmatch=True))
    def check(value):
        assert accepted(value), value

    check()


def _parses(parse, value) -> bool:
    try:
        parse(value)
    except (ValueError, PermanentTransportError):
        return False
    return True
