"""A custom field that a delivery names (its column list, which is also an export column set,
or its body template) cannot be renamed or deleted, in the API or the admin: the refusal
names the deliveries, and nothing changes."""

from __future__ import annotations

import html

import pytest

from customfields.models import CustomField
from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD
from tests.factories import make_api_delivery, make_file_delivery

pytestmark = pytest.mark.django_db
API = "/api/v1/custom-fields/"


def shout(client) -> CustomField:
    return CustomField.objects.create(client=client, name="Shout", kind="case",
                                      source="last_name", case="upper")  # fmt: skip


def nightly_file(client):
    return make_file_delivery(client, name="Nightly", columns=[
        {"source": "email", "output": "Email"}, {"source": "SHOUT", "output": "Surname"},
    ])  # fmt: skip


def test_a_field_a_deliverys_column_list_names_is_not_deleted_by_the_api(manager_api,
                                                                        client_a):  # fmt: skip
    field = shout(client_a)
    delivery = nightly_file(client_a)
    response = manager_api.delete(f"{API}{field.pk}/")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "'Shout' is used by the delivery 'Nightly' (column list): change it before you delete it."
    )
    assert CustomField.objects.filter(pk=field.pk).exists()

    delivery.columns = [{"source": "email", "output": "Email"}]
    delivery.save()
    assert manager_api.delete(f"{API}{field.pk}/").status_code == 204


def test_a_field_a_body_template_names_is_not_renamed(manager_api, client_a):
    field = shout(client_a)
    make_api_delivery(client_a, "https://crm.example/hook", name="CRM", body_format="json",
                      body_template='{"surname": "{{{shout}}}"}')  # fmt: skip
    nightly_file(client_a)
    response = manager_api.patch(f"{API}{field.pk}/", {"name": "Loud"}, format="json")
    assert response.status_code == 409
    message = response.json()["name"][0]
    assert "the delivery 'CRM' (body template)" in message
    assert "the delivery 'Nightly' (column list)" in message
    assert CustomField.objects.get(pk=field.pk).name == "Shout"
    # Other edits of a field in use stay possible.
    edited = manager_api.patch(f"{API}{field.pk}/", {"case": "lower"}, format="json")
    assert edited.status_code == 200


def test_another_clients_delivery_does_not_hold_a_field(manager_api, client_a, client_b):
    field = shout(client_a)
    nightly_file(client_b)
    assert manager_api.delete(f"{API}{field.pk}/").status_code == 204


def test_the_admin_keeps_a_field_in_use_and_says_which_deliveries_use_it(client, manager,
                                                                        client_a):  # fmt: skip
    field = shout(client_a)
    nightly_file(client_a)
    client.force_login(manager)
    url = f"/admin/customfields/customfield/{field.pk}/delete/"
    page = html.unescape(client.post(url, {"post": "yes"}).content.decode())
    assert "'Shout' is used by the delivery 'Nightly' (column list)" in page
    assert CustomField.objects.filter(pk=field.pk).exists()

    bulk = client.post("/admin/customfields/customfield/", {
        "action": "delete_selected", "_selected_action": [field.pk], "post": "yes",
    })  # fmt: skip
    assert "the delivery 'Nightly' (column list)" in html.unescape(bulk.content.decode())
    assert CustomField.objects.filter(pk=field.pk).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_admin_delete_page_of_a_field_in_use_reads_well(live_server, manager, client_a,
                                                             tmp_path):  # fmt: skip
    field = shout(client_a)
    nightly_file(client_a)
    with browser_page() as page:
        delete_page = f"/admin/customfields/customfield/{field.pk}/delete/"
        log_in(page, live_server.url, manager.username, PASSWORD, next_path=delete_page)
        content = page.locator("#content")
        content.locator("text=is in use, so it cannot be deleted").wait_for(timeout=10_000)
        assert "is used by the delivery 'Nightly' (column list)" in content.inner_text()
        assert page.locator("input[type=submit]").count() == 0  # nothing to confirm
        for width in (1366, 1920):
            page.set_viewport_size({"width": width, "height": 768})
            page.screenshot(path=str(tmp_path / f"in-use-{width}.png"),
                            full_page=True)  # fmt: skip
    assert CustomField.objects.filter(pk=field.pk).exists()
