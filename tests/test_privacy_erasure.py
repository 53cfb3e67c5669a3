"""Erasure on request: by email (normalised as the hash custom field does) or by client and
external id, through the API and the admin; export files holding the person go; the receipt
keeps no personal data; client users cannot erase."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from deliveries.models import DeliveryItem
from exports.services import PROGRESS_EVERY, ExportRequest, export_build, export_start
from privacy.erasure import Person, erasure_run, identifier_hash
from privacy.models import ErasureReceipt
from referrals.models import ExportAudit, Referral
from referrals.services import referrals_ingest
from tests.factories import make_file_delivery, make_referral, referral_record
from tests.processes import wait_for

URL = "/api/v1/erasures/"


def _export_file(client, user) -> ExportAudit:
    """A background export of every referral of ``client``, built: its file on disk."""
    audit, stream = export_start(ExportRequest(client=client, format="xlsx"), user=user)
    assert stream is None
    export_build(audit.pk)
    audit.refresh_from_db()
    assert Path(audit.file_path).exists()
    return audit


@pytest.mark.django_db
def test_an_email_is_found_as_the_hash_field_normalises_it_in_every_client(
    client_a, client_b, manager_api
):
    in_a = make_referral(client_a, email="Ada.Lovelace@Example.com")
    in_b = make_referral(client_b, email="ada.lovelace@example.COM")
    other = make_referral(client_a, email="grace@example.com")

    answer = manager_api.post(URL, {"email": "  ADA.lovelace@example.com\t"})

    assert answer.status_code == 201, answer.content
    assert answer.json()["referrals"] == 2
    assert not Referral.objects.filter(pk__in=[in_a.pk, in_b.pk]).exists()
    assert Referral.objects.filter(pk=other.pk).exists()
    # The same hash whichever way the address was written: comparable, not readable.
    receipt = ErasureReceipt.objects.get()
    assert receipt.identifier_hash == identifier_hash(Person.by_email("ada.lovelace@example.com"))
    assert "ada" not in json.dumps(answer.json()).lower()
    assert receipt.requested_by.username == "manager" and receipt.source == "api"


@pytest.mark.django_db
def test_an_email_with_a_client_erases_only_that_clients_referrals(client_a, client_b, manager_api):
    in_a = make_referral(client_a, email="ada@example.com")
    in_b = make_referral(client_b, email="ada@example.com")

    answer = manager_api.post(URL, {"email": "ada@example.com", "client": client_a.slug})

    assert answer.status_code == 201 and answer.json()["client"] == client_a.slug
    assert not Referral.objects.filter(pk=in_a.pk).exists()
    assert Referral.objects.filter(pk=in_b.pk).exists()


@pytest.mark.django_db
def test_a_client_and_external_id_erase_that_referral_and_its_ledger(client_a, manager_api):
    make_file_delivery(client_a)
    gone = make_referral(client_a, external_id="lead-1")
    kept = make_referral(client_a, external_id="lead-2")

    answer = manager_api.post(URL, {"client": client_a.slug, "external_id": "lead-1"})

    assert answer.status_code == 201
    assert (answer.json()["referrals"], answer.json()["ledger_items"]) == (1, 1)
    assert list(DeliveryItem.objects.values_list("referral_id", flat=True)) == [kept.pk]
    assert not Referral.objects.filter(pk=gone.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": " \t "}, "email"),  # white space alone names nobody
        ({"email": "a" * 255}, "email"),
        ({"email": 12}, "email"),
        ({"email": "a@b.c", "external_id": "x", "client": "alpha"}, "email"),  # not both
        ({"external_id": "lead-1"}, "client"),
        ({"client": "nobody", "external_id": "lead-1"}, "client"),
        ({"client": 1, "external_id": "lead-1"}, "client"),
        ({"client": "alpha", "external_id": ""}, "external_id"),
        ({"email": "a@b.c", "note": "x"}, "note"),
        (["a@b.c"], "non_field_errors"),
    ],
)
def test_a_request_that_names_nobody_is_refused_naming_the_problem(manager_api, body, field):
    answer = manager_api.post(URL, body)

    assert answer.status_code == 400
    assert field in answer.json(), answer.json()
    assert not ErasureReceipt.objects.exists()


@pytest.mark.django_db
def test_client_users_can_neither_erase_nor_see_receipts(client_a, api_a, manager):
    referral = make_referral(client_a, email="ada@example.com")
    receipt = erasure_run(Person.by_email("nobody@example.com"), user=manager, source="api")

    assert api_a.post(URL, {"email": "ada@example.com"}).status_code == 403
    assert api_a.get(URL).status_code == 403
    assert api_a.get(f"{URL}{receipt.pk}/").status_code == 403
    assert Referral.objects.filter(pk=referral.pk).exists()


@pytest.mark.django_db
def test_staff_list_and_read_receipts(manager_api, manager):
    receipt = erasure_run(Person.by_email("nobody@example.com"), user=manager, source="api")

    listed = manager_api.get(URL).json()
    one = manager_api.get(f"{URL}{receipt.pk}/").json()

    assert [r["id"] for r in listed["results"]] == [receipt.pk]
    assert one["referrals"] == 0 and one["requested_by"] == "manager"


@pytest.mark.django_db
def test_an_unexpired_export_file_holding_the_person_is_deleted(
    client_a, client_b, manager, tmp_path
):
    with override_settings(EXPORT_DIR=tmp_path):
        make_referral(client_a, email="ada@example.com")
        make_referral(client_b, email="grace@example.com")
        holding = _export_file(client_a, manager)
        other_client = _export_file(client_b, manager)
        expired = _export_file(client_a, manager)
        ExportAudit.objects.filter(pk=expired.pk).update(expires_at=timezone.now())

        receipt = erasure_run(Person.by_email("ada@example.com"), user=manager, source="api")

    assert receipt.export_files == 1
    holding.refresh_from_db()
    assert not Path(holding.file_path or "/nonexistent").exists()
    assert holding.status == ExportAudit.Status.EXPIRED and holding.file_path == ""
    assert f"erasure #{receipt.pk}" in holding.error
    assert Path(other_client.file_path).exists()


@pytest.mark.django_db
def test_an_export_whose_filters_leave_the_person_out_keeps_its_file(client_a, manager, tmp_path):
    with override_settings(EXPORT_DIR=tmp_path):
        make_referral(client_a, email="ada@example.com", campaign="camp-2")
        make_referral(client_a, email="grace@example.com", campaign="camp-1")
        campaign = Referral.objects.get(email="grace@example.com").campaign_id
        request = ExportRequest(client=client_a, format="xlsx", campaign_ids=(campaign,))
        audit, _ = export_start(request, user=manager)
        export_build(audit.pk)
        audit.refresh_from_db()

        receipt = erasure_run(Person.by_email("ada@example.com"), user=manager, source="api")

    assert (receipt.referrals, receipt.export_files) == (1, 0)
    assert Path(audit.file_path).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_export_running_when_the_erasure_commits_is_stopped_and_leaves_no_file(
    client_a, manager, tmp_path, settings
):
    settings.EXPORT_DIR = tmp_path
    referrals_ingest(records=[referral_record(client_a) for _ in range(3 * PROGRESS_EVERY)])
    make_referral(client_a, email="ada@example.com")
    audit, _ = export_start(ExportRequest(client=client_a, format="xlsx"), user=manager)
    build = threading.Thread(target=_build_apart, args=[audit.pk])
    with transaction.atomic():
        # The row locked once the build has begun: its progress report, after
        # PROGRESS_EVERY rows, waits for this transaction (the erasure's) to end.
        build.start()
        wait_for(lambda: _status(audit) == "running", timeout=30, what="the build to start")
        ExportAudit.objects.select_for_update().get(pk=audit.pk)
        receipt = erasure_run(Person.by_email("ada@example.com"), user=manager, source="api")
    build.join(60)

    audit.refresh_from_db()
    assert receipt.export_files == 1
    assert audit.status == ExportAudit.Status.FAILED and f"erasure #{receipt.pk}" in audit.error
    assert list(tmp_path.iterdir()) == []  # what it had written is gone


def _status(audit: ExportAudit) -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT status FROM referrals_exportaudit WHERE id = %s", [audit.pk])
        return cursor.fetchone()[0]


def _build_apart(audit_id: int) -> None:
    try:
        export_build(audit_id)
    finally:
        connection.close()


@pytest.mark.django_db
def test_an_export_audit_no_longer_names_the_person_it_searched_for(client_a, manager):
    make_referral(client_a, email="ada@example.com", external_id="lead-7", last_name="Byron")
    searched = ExportAudit.objects.create(
        user=manager, client=client_a, format="csv",
        filters={"search": 'ADA@example.com Byron "lead-7"', "campaign_ids": [3]},
    )  # fmt: skip
    other = ExportAudit.objects.create(
        user=manager, client=client_a, format="csv", filters={"search": "grace@example.com"}
    )

    erasure_run(Person.by_email("ada@example.com"), user=manager, source="api")

    searched.refresh_from_db()
    other.refresh_from_db()
    assert searched.filters == {"search": "[erased] Byron [erased]", "campaign_ids": [3]}
    assert other.filters == {"search": "grace@example.com"}
