"""Customer Data > Referrals > Export: the right rows, in every format, for the right people."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User

from customfields.models import CustomField
from referrals.models import ExportAudit
from tests.factories import make_referral

pytestmark = pytest.mark.django_db
URL = "/admin/referrals/referral/export/"


def export(browser, **form) -> tuple[int, bytes]:
    """Post the export form as ``browser`` (a logged-in test client)."""
    data = {"time_field": "created_at", "column_set": "standard", "format": "csv", **form}
    response = browser.post(URL, {k: v for k, v in data.items() if v is not None})
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


def test_export_is_refused_without_the_permission(client, client_a):
    staff = User.objects.create_user("plain", password="x-long-password-1", is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert export(client, client=client_a.pk)[0] == 403
    assert not ExportAudit.objects.exists()


def test_a_client_user_exports_only_their_client(client, user_a, client_a, client_b):
    make_referral(client_a, external_id="mine")
    make_referral(client_b, external_id="theirs", campaign="b-camp")
    client.force_login(user_a)
    status, body = export(client, client=client_a.pk)
    assert [r["external_id"] for r in csv_rows(body)] == ["mine"]

    status, body = export(client, client=client_b.pk)  # a hand-made form
    assert status == 200 and b"theirs" not in body and b"Select a valid choice" in body
    b_campaign = client_b.campaigns.get()
    status, body = export(client, client=client_a.pk, campaigns=[b_campaign.pk])
    assert b"theirs" not in body and b"Select a valid choice" in body


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
    client.force_login(manager)
    listing = client.get("/admin/referrals/referral/").content.decode()
    assert "/admin/referrals/referral/export/" in listing
    plain = User.objects.create_user("plain", password="x-long-password-1", is_staff=True)
    plain.user_permissions.add(Permission.objects.get(codename="view_referral"))
    client.force_login(plain)
    assert "/export/" not in client.get("/admin/referrals/referral/").content.decode()


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
