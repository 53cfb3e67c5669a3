"""Customer Data > Referrals > Export: the right rows, in every format, for the right people."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import import_export.forms
import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
from import_export.signals import post_export

from customfields.models import CustomField
from referrals.models import ExportAudit
from tests.factories import make_client, make_referral

pytestmark = pytest.mark.django_db
URL = "/admin/referrals/referral/export/"


def submit(browser, **form) -> HttpResponse:
    """Post the export form as ``browser`` (a logged-in test client); a field set to ``None``
    is left out."""
    data = {"time_field": "created_at", "column_set": "standard", "format": "csv", **form}
    return browser.post(URL, {k: v for k, v in data.items() if v is not None})


def export(browser, **form) -> tuple[int, bytes]:
    response = submit(browser, **form)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body


def csv_rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture
def new_york(client_b):
    """Client B is in America/New_York: days start at 05:00 UTC in winter."""
    return client_b


def test_the_range_is_whole_days_in_the_client_time_zone(client, manager, new_york):
    for moment, name in [
        ("2025-03-01T04:59:59+00:00", "feb28-late"),
        ("2025-03-01T05:00:00+00:00", "mar1-midnight"),
        ("2025-03-02T04:59:59+00:00", "mar1-late"),
        ("2025-03-02T05:00:00+00:00", "mar2-midnight"),
    ]:
        make_referral(new_york, external_id=name, opted_in_at=moment)
    client.force_login(manager)
    status, body = export(client, client=new_york.pk, time_field="opted_in_at",
                          start="2025-03-01", end="2025-03-01")  # fmt: skip
    assert status == 200
    rows = csv_rows(body)
    assert [r["external_id"] for r in rows] == ["mar1-midnight", "mar1-late"]
    assert rows[0]["opted_in_at"] == "2025-03-01T00:00:00-05:00"


def test_csv_and_json_hold_custom_fields_and_only_the_chosen_campaigns(client, manager, client_a):
    make_referral(client_a, external_id="r1", gender="M", campaign="spring")
    make_referral(client_a, external_id="r2", gender="F", campaign="autumn")
    CustomField.objects.create(
        client=client_a,
        name="GenderLabel",
        kind="value_map",
        source="gender",
        no_match="passthrough",
        rules=[{"match": "equals", "value": "M", "output": "Male"}],
    )
    spring = client_a.campaigns.get(external_id="spring")
    client.force_login(manager)
    for fmt in ("csv", "json"):
        status, body = export(client, client=client_a.pk, column_set="custom", format=fmt,
                              campaigns=[spring.pk])  # fmt: skip
        assert status == 200
        rows = csv_rows(body) if fmt == "csv" else json.loads(body)
        assert [(r["external_id"], r["GenderLabel"]) for r in rows] == [("r1", "Male")]


def test_formulae_are_neutralised_in_csv(client, manager, client_a):
    make_referral(client_a, first_name='=HYPERLINK("http://evil")', last_name="+1")
    client.force_login(manager)
    rows = csv_rows(export(client, client=client_a.pk)[1])
    assert rows[0]["first_name"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["last_name"] == "'+1"


def test_export_is_refused_without_the_permission(client, manager, client_a, settings):
    # import-export would let every admin user export without this setting; ours asks anyway.
    assert not hasattr(settings, "IMPORT_EXPORT_EXPORT_PERMISSION_CODE")
    client.force_login(manager)
    export(client, client=client_a.pk)
    audit = ExportAudit.objects.get()
    staff = User.objects.create_user("plain", password="x-long-password-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_referral"))
    client.force_login(staff)
    for url in (URL, f"{URL}{audit.pk}/", f"{URL}{audit.pk}/download/"):
        assert client.get(url).status_code == 403, url
    assert export(client, client=client_a.pk)[0] == 403
    assert ExportAudit.objects.count() == 1


def test_a_client_user_exports_only_their_client(client, user_a, client_a, client_b):
    make_referral(client_a, external_id="mine")
    make_referral(client_b, external_id="theirs", campaign="b-camp")
    client.force_login(user_a)
    _, body = export(client, client=client_a.pk)
    assert [r["external_id"] for r in csv_rows(body)] == ["mine"]

    # A hand-made form naming client B still exports client A: the field is forced.
    _, body = export(client, client=client_b.pk)
    assert [r["external_id"] for r in csv_rows(body)] == ["mine"]
    assert {a.client for a in ExportAudit.objects.all()} == {client_a}
    b_campaign = client_b.campaigns.get()
    _, body = export(client, client=client_a.pk, campaigns=[b_campaign.pk])
    assert b"theirs" not in body and b"Select a valid choice" in body
    # So does the list's query string that import-export's Export button carries.
    page = client.get(f"{URL}?client={client_b.pk}&campaign={b_campaign.pk}")
    assert page.status_code == 200
    assert page.context["form"]["client"].value() == client_a.pk
    assert b"b-camp" not in page.content


def test_every_export_is_audited(client, manager, client_a):
    for _ in range(3):
        make_referral(client_a)
    client.force_login(manager)
    export(client, client=client_a.pk, format="json", start="2020-01-01")
    audit = ExportAudit.objects.get()
    assert (audit.user, audit.client, audit.format, audit.rows) == (manager, client_a, "json", 3)
    assert audit.filters["start"] == "2020-01-01"
    assert audit.completed_at is not None
    page = client.get("/admin/referrals/exportaudit/").content.decode()
    assert "Alpha Corp" in page


def test_the_referral_list_offers_export_to_those_who_may(client, manager, user_a):
    for user in (manager, user_a):
        client.force_login(user)
        listing = client.get("/admin/referrals/referral/").content.decode()
        assert re.search(f'href="{URL}[^"]*" class="export_link">Export<', listing), user
    plain = User.objects.create_user("plain", password="x-long-password-1", is_staff=True)
    plain.user_permissions.add(Permission.objects.get(codename="view_referral"))
    client.force_login(plain)
    assert "/export/" not in client.get("/admin/referrals/referral/").content.decode()


def test_the_lists_export_button_is_import_exports_and_opens_its_form_with_the_filters(
    client, manager, client_a
):
    campaign = make_referral(client_a).campaign
    client.force_login(manager)
    query = f"?client={client_a.pk}&campaign={campaign.pk}&opted_in_at__range__gte=2025-03-01"
    listing = client.get(f"/admin/referrals/referral/{query}")
    assert "admin/import_export/change_list_export.html" in [t.name for t in listing.templates]
    link = re.search(r'<a href="([^"]+)" class="export_link">Export</a>', listing.content.decode())
    url = html.unescape(link[1])
    assert url.startswith(URL) and f"campaign={campaign.pk}" in url

    page = client.get(url)
    assert page.resolver_match.view_name == "admin:referrals_referral_export"
    assert "admin/import_export/base.html" in [t.name for t in page.templates]
    form = page.context["form"]
    assert isinstance(form, import_export.forms.ExportForm)
    values = [form[name].value() for name in ("client", "campaigns", "time_field", "start")]
    assert values == [client_a.pk, [campaign.pk], "opted_in_at", "2025-03-01"]
    assert form["format"].value() is None and b'<option value="csv">CSV</option>' in page.content


def test_a_post_streams_the_rows_and_import_exports_in_memory_export_never_runs(
    client, manager, client_a, client_b
):
    mine = {make_referral(client_a).external_id for _ in range(3)}
    make_referral(client_b, campaign="b-camp")
    sent = []

    def on_post_export(**kwargs) -> None:
        sent.append(kwargs)

    post_export.connect(on_post_export)
    client.force_login(manager)
    try:
        response = submit(client, client=client_a.pk)
    finally:
        post_export.disconnect(on_post_export)
    # import-export's export answers a whole HttpResponse named "Referral-<date>.csv", then
    # sends post_export; this one streams, under the platform's name, and sends nothing.
    assert response.streaming and not sent
    audit = ExportAudit.objects.get()
    assert response["Content-Disposition"] == f'attachment; filename="{audit.file_name}"'
    assert audit.file_name.startswith("referrals-alpha-")
    rows = csv_rows(b"".join(response.streaming_content))
    assert {r["external_id"] for r in rows} == mine


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"client": ""}, "client", "This field is required."),
        ({"client": "99999999"}, "client", "Select a valid choice."),
        ({"start": "2025-13-01"}, "start", "Enter a valid date."),
        ({"start": "2025-03-02", "end": "2025-03-01"}, "end", "The end is before the start."),
        ({"format": "xls"}, "format", "Select a valid choice."),
        ({"format": None}, "format", "This field is required."),
        ({"time_field": "birth_date"}, "time_field", "Select a valid choice."),
        ({"column_set": "delivery:x"}, "column_set", "Select a valid choice."),
        ({"campaigns": ["x"]}, "campaigns", "is not a valid value."),
    ],
)
def test_bad_input_shows_the_form_with_an_error_and_exports_nothing(
    client, manager, client_a, form, field, message
):
    client.force_login(manager)
    response = submit(client, **{"client": client_a.pk, **form})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message in html.unescape(response.content.decode())
    assert not ExportAudit.objects.exists()


def test_a_streamed_csv_is_audited_with_its_row_count(client, manager, client_a):
    for _ in range(4):
        make_referral(client_a)
    client.force_login(manager)
    _, body = export(client, client=client_a.pk, format="csv")
    assert len(csv_rows(body)) == 4
    audit = ExportAudit.objects.get()
    assert (audit.rows, audit.status) == (4, "streamed")
    assert audit.completed_at is not None


def test_a_deliverys_column_list_is_a_column_set(client, manager, user_a, client_a, client_b):
    from tests.factories import make_file_delivery

    CustomField.objects.create(client=client_a, name="Shout", kind="case", source="last_name",
                               case="upper")  # fmt: skip
    delivery = make_file_delivery(client_a, columns=[
        {"source": "external_id", "output": "Ref"}, {"source": "Shout", "output": "SURNAME"},
    ])  # fmt: skip
    other = make_file_delivery(client_b)
    make_referral(client_a, external_id="r1", last_name="lovelace")
    client.force_login(user_a)  # a client user may use their own delivery's list
    status, body = export(client, client=client_a.pk, column_set=f"delivery:{delivery.pk}")
    assert status == 200
    assert csv_rows(body) == [{"Ref": "r1", "SURNAME": "LOVELACE"}]
    # Another client's delivery is not offered, and refused if sent.
    status, body = export(client, client=client_a.pk, column_set=f"delivery:{other.pk}")
    assert status == 200 and b"Select a valid choice" in body
    client.force_login(manager)
    status, body = export(client, client=client_a.pk, column_set=f"delivery:{other.pk}")
    assert b"Not a delivery of" in body


def test_header_cells_are_neutralised_like_values(client, manager, client_a):
    """Output names are user text: a header is a cell a spreadsheet reads too."""
    from tests.factories import make_file_delivery

    delivery = make_file_delivery(client_a, columns=[
        {"source": "external_id", "output": '=HYPERLINK("http://x","h")'},
        {"source": "first_name", "output": "@SUM(2)"},
    ])  # fmt: skip
    make_referral(client_a, external_id="r1", first_name="Ann")
    client.force_login(manager)
    _, body = export(client, client=client_a.pk, column_set=f"delivery:{delivery.pk}")
    assert list(csv.reader(io.StringIO(body.decode()))) == [
        ['\'=HYPERLINK("http://x","h")', "'@SUM(2)"], ["r1", "Ann"],
    ]  # fmt: skip


def test_an_empty_value_is_written_as_nothing_on_every_database(client, manager, client_a):
    """One CSV whatever the database: PostgreSQL's COPY quoted an empty value (``""``), the
    Python back end left a carriage return unquoted (customfields/csvfile.py)."""
    from tests.factories import make_file_delivery

    delivery = make_file_delivery(client_a, columns=[
        {"source": "external_id", "output": "Ref"}, {"source": "address2", "output": "Line 2"},
        {"source": "city", "output": "City"}, {"source": "state", "output": "State"},
    ])  # fmt: skip
    make_referral(client_a, external_id="r1", address2="", city="a\rb", state='say "hi", bye')
    client.force_login(manager)
    _, body = export(client, client=client_a.pk, column_set=f"delivery:{delivery.pk}")
    assert body == b'Ref,Line 2,City,State\nr1,,"a\rb","say ""hi"", bye"\n'


def test_a_csv_export_offers_a_utf8_bom_for_excel(client, manager, client_a):
    make_referral(client_a, first_name="Zoë")
    client.force_login(manager)
    page = client.get(URL)
    assert page.context["form"]["bom"].value() is True  # offered, ticked
    _, with_bom = export(client, client=client_a.pk, bom="on")
    assert with_bom.startswith("\ufeffexternal_id,".encode())
    assert "Zoë" in with_bom.decode("utf-8-sig")
    _, without = export(client, client=client_a.pk)
    assert without == with_bom.removeprefix("\ufeff".encode())
    _, as_json = export(client, client=client_a.pk, bom="on", format="json")
    assert as_json.startswith(b"[")  # a BOM is for CSV only
    assert ExportAudit.objects.filter(filters__bom=True).count() == 1


def test_the_lists_search_carries_into_the_export(client, manager, client_a):
    make_referral(client_a, external_id="wanted", email="a@example.com")
    make_referral(client_a, external_id="other", email="b@example.com")
    client.force_login(manager)
    listing = client.get(f"/admin/referrals/referral/?client={client_a.pk}&q=A%40Example.com")
    link = re.search(r'<a href="([^"]+)" class="export_link">Export</a>', listing.content.decode())
    page = client.get(html.unescape(link[1]))
    assert page.context["form"]["search"].value() == "A@Example.com"
    for fmt in ("csv", "json"):
        _, body = export(client, client=client_a.pk, search="A@Example.com", format=fmt)
        rows = csv_rows(body) if fmt == "csv" else json.loads(body)
        assert [r["external_id"] for r in rows] == ["wanted"], fmt
    _, body = export(client, client=client_a.pk, search="'a@example.com' other")
    assert [r["external_id"] for r in csv_rows(body)] == []  # every word must match, as listed
    assert ExportAudit.objects.first().filters["search"] == "'a@example.com' other"


def test_an_account_managers_campaigns_are_labelled_with_their_client(
    client, manager, client_a, client_b
):
    make_referral(client_a, campaign="spring")
    make_referral(client_b, campaign="spring")
    client.force_login(manager)
    labels = [label for _, label in client.get(URL).context["form"]["campaigns"].field.choices]
    assert labels == ["Alpha Corp: spring (spring)", "Bravo Corp: spring (spring)"]


def test_the_form_chooses_the_client_when_there_is_only_one(client, manager, client_a):
    client.force_login(manager)
    form = client.get("/admin/referrals/referral/export/").context["form"]
    assert form["client"].value() == client_a.pk
    make_client("second", name="Second Corp")
    form = client.get("/admin/referrals/referral/export/").context["form"]
    assert form["client"].value() is None  # two to choose from: the manager chooses
