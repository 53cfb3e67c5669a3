"""Custom fields through the API and the admin: saved only when valid, previewed unsaved."""

from __future__ import annotations

import json

import pytest

from customfields.models import CustomField
from referrals.models import ExportAudit
from tests.conftest import api_client_for
from tests.factories import make_referral

pytestmark = pytest.mark.django_db
API = "/api/v1/custom-fields/"


def gender_map(client_slug: str, **overrides) -> dict:
    return {
        "client": client_slug, "name": "GenderLabel", "kind": "value_map", "source": "gender",
        "rules": [{"match": "equals", "value": "M", "output": "Male"}],
        "no_match": "passthrough", **overrides,
    }  # fmt: skip


def test_manager_creates_lists_and_updates_a_custom_field(manager_api, client_a):
    created = manager_api.post(API, gender_map("alpha"), format="json")
    assert created.status_code == 201, created.json()
    field_id = created.json()["id"]
    assert [f["name"] for f in manager_api.get(API).json()] == ["GenderLabel"]
    patched = manager_api.patch(f"{API}{field_id}/", {"no_match": "default",
                                "no_match_default": "Other"}, format="json")  # fmt: skip
    assert patched.status_code == 200, patched.json()
    assert CustomField.objects.get(pk=field_id).no_match_default == "Other"


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": "email"}, "name", "standard field"),
    ({"source": "nope"}, "source", "Unknown field"),
    ({"rules": [{"match": "regex", "value": "[a-", "output": "x"}]}, "rules", "Missing ']'"),
    ({"kind": "datetime", "source": "opted_in_at", "date_pattern": "%Q"}, "date_pattern", "%Q"),
    ({"kind": "template", "template": "{{{who}}}"}, "template", "Unknown field"),
    ({"client": "no-such-client"}, "client", "does not exist"),
])  # fmt: skip
def test_invalid_definitions_are_refused_naming_the_field(manager_api, client_a, overrides,
                                                          field, message):  # fmt: skip
    response = manager_api.post(API, gender_map("alpha", **overrides), format="json")
    assert response.status_code == 400
    assert any(message in m for m in response.json()[field]), response.json()
    assert not CustomField.objects.exists()


def test_a_patch_that_would_close_a_cycle_is_refused(manager_api, client_a):
    first = manager_api.post(API, {"client": "alpha", "name": "A1", "kind": "case",
                                   "source": "email", "case": "upper"}, format="json").json()
    manager_api.post(API, {"client": "alpha", "name": "B1", "kind": "case", "source": "A1",
                           "case": "lower"}, format="json")  # fmt: skip
    response = manager_api.patch(f"{API}{first['id']}/", {"source": "B1"}, format="json")
    assert response.status_code == 409  # the other field closes it: a conflict
    assert "cycle" in response.json()["source"][0]
    assert CustomField.objects.get(pk=first["id"]).source == "email"


def test_client_users_read_their_own_fields_and_change_none(client_a, client_b, user_a):
    CustomField.objects.create(client=client_a, name="Mine", kind="constant", constant="a")
    CustomField.objects.create(client=client_b, name="Theirs", kind="constant", constant="b")
    api = api_client_for(user_a)
    assert [f["name"] for f in api.get(API).json()] == ["Mine"]
    assert api.post(API, gender_map("alpha"), format="json").status_code == 403
    theirs = CustomField.objects.get(name="Theirs")
    assert api.get(f"{API}{theirs.pk}/").status_code == 404
    assert api.delete(f"{API}{theirs.pk}/").status_code in (403, 404)
    assert CustomField.objects.count() == 2


def test_preview_renders_latest_referrals_and_a_sample_without_saving(manager_api, client_a):
    make_referral(client_a, external_id="r1", gender="M")
    make_referral(client_a, external_id="r2", gender="X")
    body = {**gender_map("alpha"), "sample": {"gender": "M"}}
    response = manager_api.post(f"{API}preview/", body, format="json")
    assert response.status_code == 200, response.json()
    result = response.json()
    latest = [(r["external_id"], r["value"]) for r in result["latest"]]
    assert latest == [("r2", "X"), ("r1", "Male")]
    assert result["sample"] == "Male"
    assert not CustomField.objects.exists()


def test_preview_reports_a_bad_sample_field(manager_api, client_a):
    body = {**gender_map("alpha"), "sample": {"birth_date": "yesterday"}}
    response = manager_api.post(f"{API}preview/", body, format="json")
    assert response.status_code == 400
    assert "sample.birth_date" in response.json()


def test_admin_form_shows_the_engine_error_on_the_field(client, manager, client_a):
    client.force_login(manager)
    response = client.post("/admin/customfields/customfield/add/", {
        "client": client_a.pk, "name": "Bad", "kind": "datetime", "source": "opted_in_at",
        "date_output": "strftime", "date_pattern": "%Q", "rules": "[]", "no_match": "default",
    })  # fmt: skip
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "%Q" in errors["date_pattern"][0]
    assert not CustomField.objects.exists()


def test_admin_preview_view_renders_the_typed_definition(client, manager, client_a):
    make_referral(client_a, first_name="ada", last_name="lovelace")
    client.force_login(manager)
    response = client.post("/admin/customfields/customfield/preview/", {
        "client": client_a.pk, "name": "Full", "kind": "template",
        "template": "{{{First_Name}}} {{{LAST_NAME}}}", "rules": "[]", "no_match": "default",
        "date_output": "strftime", "sample": json.dumps({"first_name": "Grace"}),
    })  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["latest"][0]["value"] == "ada lovelace"
    assert response.json()["sample"] == "Grace "
    assert not CustomField.objects.exists()


def test_admin_preview_is_refused_to_client_users(client, user_a, client_a):
    client.force_login(user_a)
    response = client.post("/admin/customfields/customfield/preview/", {
        "client": client_a.pk, "name": "X", "kind": "constant", "constant": "x",
    })  # fmt: skip
    assert response.status_code == 403


def test_client_page_shows_its_custom_fields_inline(client, manager, client_a):
    CustomField.objects.create(client=client_a, name="InlineOne", kind="constant", constant="c")
    client.force_login(manager)
    page = client.get(f"/admin/referrals/client/{client_a.pk}/change/").content.decode()
    assert "InlineOne" in page


def test_a_field_others_refer_to_cannot_be_renamed_or_deleted(manager_api, client, manager,
                                                              client_a):  # fmt: skip
    base = manager_api.post(API, {"client": "alpha", "name": "Base", "kind": "case",
                                  "source": "email", "case": "upper"}, format="json").json()
    manager_api.post(API, {"client": "alpha", "name": "Uses", "kind": "template",
                           "template": "<{{{base}}}>"}, format="json")  # fmt: skip
    renamed = manager_api.patch(f"{API}{base['id']}/", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 409
    assert "'Base' is used by the custom field 'Uses'" in renamed.json()["name"][0]
    deleted = manager_api.delete(f"{API}{base['id']}/")
    assert deleted.status_code == 409
    assert "'Base' is used by the custom field 'Uses'" in str(deleted.json())

    client.force_login(manager)
    page = client.post(f"/admin/customfields/customfield/{base['id']}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "is used by the custom field" in page.content.decode()
    assert CustomField.objects.filter(name="Base").exists()

    uses = CustomField.objects.get(name="Uses")
    assert manager_api.delete(f"{API}{uses.pk}/").status_code == 204
    assert manager_api.delete(f"{API}{base['id']}/").status_code == 204


@pytest.mark.parametrize(("stored", "message"), [
    ([("X", "Y"), ("Y", "X")], "Custom fields refer to each other in a cycle: x → y → x."),
    ([("Z", "Gone")], "Unknown field 'Gone' (named by the custom field 'Z')"),
])  # fmt: skip
def test_an_export_meeting_a_broken_custom_field_names_it_instead_of_failing(
    client, manager, client_a, stored, message
):
    # Definitions stored before every save was checked under a lock (or edited in the database).
    for name, source in stored:
        CustomField.objects.create(client=client_a, name=name, kind="case", source=source,
                                   case="upper")  # fmt: skip
    make_referral(client_a)
    client.force_login(manager)
    response = client.post("/admin/referrals/referral/export/", {
        "client": client_a.pk, "time_field": "created_at", "column_set": "custom", "format": "csv",
    })  # fmt: skip
    assert response.status_code == 200 and not response.streaming
    assert message in " ".join(response.context["form"].errors["column_set"])
    assert not ExportAudit.objects.exists()
