"""The schema served for custom fields tells a client what a valid definition is: each kind's
shape is accepted as the schema says, what the schema refuses is refused (400 naming the
field), and what depends on the client's other rows (a name taken, a field in use, a cycle)
answers 409 in the documented Error shape."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customfields.api.schema import NAME
from customfields.dateformat import DatePatternError, parse_pattern, pattern_regex
from customfields.models import CustomField
from customfields.validation import NAME_PATTERN, RESERVED_NAMES
from tests.contract_helpers import body_validator, response_validator, served_schema, validator
from tests.factories import make_file_delivery

pytestmark = pytest.mark.django_db
API = "/api/v1/custom-fields/"
ITEM = "/api/v1/custom-fields/{id}/"

VALID = [
    {"kind": "value_map", "source": "gender", "rules": [
        {"match": "equals", "value": "M", "output": "Male", "case_sensitive": False},
        {"match": "regex", "value": "^f", "output": "Female"}], "no_match": "passthrough"},
    {"kind": "datetime", "source": "opted_in_at", "date_pattern": "%d/%m/%Y %H:%M"},
    {"kind": "datetime", "source": "Birth_Date", "date_pattern": "%Y-%m-%d"},
    {"kind": "datetime", "source": "birth_date", "date_output": "excel"},
    {"kind": "template", "template": "{{{first_name}}} {{{last_name}}}"},
    {"kind": "constant", "constant": "web"},
    {"kind": "constant"},
    {"kind": "case", "source": "extra.city", "case": "title"},
    {"kind": "hash", "source": "EMAIL", "algorithm": "sha256", "time_zone": "Europe/Paris"},
]  # fmt: skip

# Refused by the schema and by the API alike, each naming the field.
INVALID = [
    ({"client": ""}, "client"),
    ({"client": 7}, "client"),
    ({"name": ""}, "name"),
    ({"name": "Email"}, "name"),  # a standard field's name, in any case
    ({"name": "2fast"}, "name"),
    ({"name": "Shout\n"}, "name"),
    ({"name": 12}, "name"),
    ({"rules": None}, "rules"),
    ({"rules": [{"match": "like", "value": "a", "output": "b"}]}, "rules"),
    ({"rules": [{"match": "equals", "value": "a", "output": "b", "extra": 1}]}, "rules"),
    ({"rules": [{"match": "regex", "value": "", "output": "b"}]}, "rules"),
    ({"kind": "hash", "algorithm": "sha1"}, "algorithm"),
    ({"kind": "case", "case": ""}, "case"),
    ({"kind": "template", "template": ""}, "template"),
    ({"kind": "datetime", "source": "opted_in_at", "date_pattern": "%Q"}, "date_pattern"),
    ({"kind": "datetime", "source": "birth_date", "date_pattern": "%H:%M"}, "date_pattern"),
    ({"kind": "datetime", "source": "city", "date_output": "iso8601"}, "source"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"source": "extra."}, "source"),
]


def _definition(**changes) -> dict:
    return {"client": "alpha", "name": "Shout", "kind": "case", "source": "last_name",
            "case": "upper", **changes}  # fmt: skip


@pytest.mark.parametrize("body", VALID, ids=lambda body: body["kind"])
def test_each_kinds_definition_the_schema_takes_is_saved(manager_api, client_a, body):
    served = served_schema(manager_api)
    body = {"client": "alpha", "name": "Out", **body}
    assert body_validator(served, API, "post").is_valid(body)

    response = manager_api.post(API, body, format="json")

    assert response.status_code == 201, response.json()
    response_validator(served, API, "post", 201).validate(response.json())
    replaced = manager_api.put(f"{API}{response.json()['id']}/", body, format="json")
    assert replaced.status_code == 200, replaced.json()


@pytest.mark.parametrize(("changes", "field"), INVALID, ids=[repr(c) for c, _ in INVALID])
def test_what_the_schema_refuses_is_refused_naming_the_field(manager_api, client_a, changes,
                                                             field):  # fmt: skip
    served = served_schema(manager_api)
    body = _definition(**changes)
    assert not body_validator(served, API, "post").is_valid(body)

    response = manager_api.post(API, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    validator(served, "Error").validate(response.json())
    assert not CustomField.objects.exists()


def test_a_taken_name_answers_409_documented(manager_api, client_a):
    served = served_schema(manager_api)
    assert manager_api.post(API, _definition(), format="json").status_code == 201

    response = manager_api.post(API, _definition(name="SHOUT"), format="json")

    assert response.status_code == 409
    assert "already has a custom field named 'SHOUT'" in response.json()["name"][0]
    response_validator(served, API, "post", 409).validate(response.json())


def test_deleting_or_renaming_a_field_in_use_answers_409(manager_api, client_a):
    served = served_schema(manager_api)
    field = manager_api.post(API, _definition(), format="json").json()
    make_file_delivery(client_a, name="Nightly", columns=[{"source": "shout", "output": "S"}])
    url = f"{API}{field['id']}/"

    deleted = manager_api.delete(url)
    renamed = manager_api.patch(url, {"name": "Loud"}, format="json")

    assert deleted.status_code == renamed.status_code == 409
    assert "used by the delivery 'Nightly'" in deleted.json()["detail"]
    response_validator(served, ITEM, "delete", 409).validate(deleted.json())
    response_validator(served, ITEM, "patch", 409).validate(renamed.json())
    assert CustomField.objects.get().name == "Shout"


def test_a_patch_the_stored_definition_cannot_take_is_a_conflict(manager_api, client_a):
    field = manager_api.post(API, _definition(), format="json").json()
    url = f"{API}{field['id']}/"

    # Sound on its own, but the stored field has no template: the state is at fault.
    becomes_template = manager_api.patch(url, {"kind": "template"}, format="json")
    # The value sent is at fault.
    bad_case = manager_api.patch(url, {"case": "shouting"}, format="json")

    assert becomes_template.status_code == 409
    assert "template" in becomes_template.json()
    assert bad_case.status_code == 400
    assert CustomField.objects.get().kind == "case"


def test_a_preview_body_the_schema_takes_renders(manager_api, client_a):
    served = served_schema(manager_api)
    body = _definition(sample={"last_name": "smith", "mobile": 447700900123})
    assert body_validator(served, "/api/v1/custom-fields/preview/", "post").is_valid(body)

    response = manager_api.post(f"{API}preview/", body, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["sample"] == "SMITH"
    response_validator(served, "/api/v1/custom-fields/preview/", "post", 200).validate(
        response.json()
    )


@pytest.mark.parametrize("sample", [{"nickname": "x"}, {"campaign": 1.5}, None, ["a"]])
def test_a_preview_sample_the_schema_refuses_is_refused(manager_api, client_a, sample):
    served = served_schema(manager_api)
    body = _definition(sample=sample)
    assert not body_validator(served, "/api/v1/custom-fields/preview/", "post").is_valid(body)

    response = manager_api.post(f"{API}preview/", body, format="json")

    assert response.status_code == 400
    validator(served, "Error").validate(response.json())


def test_a_client_user_reads_definitions_as_documented(api_a, client_a):
    CustomField.objects.create(client=client_a, name="Shout", kind="case", source="city",
                               case="upper")  # fmt: skip
    served = served_schema(api_a)
    listed = api_a.get(API)
    assert listed.status_code == 200
    response_validator(served, API, "get", 200).validate(listed.json())
    assert api_a.post(API, _definition(), format="json").status_code == 403


@given(st.text(alphabet="%YmdHMSfzQq/ :", max_size=12), st.booleans())
def test_the_published_date_pattern_is_the_parsers(pattern, has_time):
    try:
        parse_pattern(pattern, has_time=has_time)
        parsed = True
    except DatePatternError:
        parsed = False
    assert (re.search(pattern_regex(has_time=has_time), pattern) is not None) == parsed


@given(st.one_of(st.sampled_from(sorted(RESERVED_NAMES)).map(str.upper),
                 st.text(alphabet="aZ_9\n-", max_size=6)))  # fmt: skip
def test_the_published_name_pattern_is_the_validations(name):
    valid = NAME_PATTERN.fullmatch(name) is not None and name.lower() not in RESERVED_NAMES
    assert (re.search(NAME, name) is not None) == valid


def test_a_patch_with_a_malformed_value_is_invalid_not_a_conflict(manager_api, client_a):
    field = manager_api.post(API, _definition(), format="json").json()
    url = f"{API}{field['id']}/"

    bad_rules = manager_api.patch(url, {"kind": "value_map", "rules": [{"match": 1}]},
                                  format="json")  # fmt: skip
    no_rules_yet = manager_api.patch(url, {"kind": "value_map"}, format="json")

    assert bad_rules.status_code == 400
    assert no_rules_yet.status_code == 409
    assert "rules" in no_rules_yet.json()
