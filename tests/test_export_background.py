"""Large exports and XLSX: built by a worker, followed on a progress page, downloaded once
ready, gone when expired."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
from django.utils import timezone

from exports.services import exports_purge_expired
from referrals.models import ExportAudit
from rokt_platform.celery import app
from tests.factories import make_referral
from tests.test_export import URL, csv_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def inline_worker(monkeypatch, settings, tmp_path, django_capture_on_commit_callbacks):
    """Tasks run in this process as soon as the export's transaction commits."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    settings.EXPORT_DIR = tmp_path / "exports"

    def submit(browser, **form):
        data = {"time_field": "created_at", "column_set": "standard", "format": "csv", **form}
        with django_capture_on_commit_callbacks(execute=True):
            return browser.post(URL, data)

    return submit


def test_xlsx_is_built_by_a_worker_then_downloaded(client, manager, client_a, inline_worker):
    make_referral(client_a, external_id="r1", first_name="=2+2")
    make_referral(client_a, external_id="r2")
    client.force_login(manager)
    response = inline_worker(client, client=client_a.pk, format="xlsx")
    audit = ExportAudit.objects.get()
    assert response.status_code == 302
    assert response.url == f"/admin/referrals/referral/export/{audit.pk}/"
    status = client.get(f"{response.url}?format=json").json()
    assert (status["status"], status["rows"], status["total_rows"]) == ("done", 2, 2)

    download = client.get(f"{response.url}download/")
    assert download.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(download.streaming_content)))
    rows = list(workbook.active.iter_rows(values_only=True))
    header = rows[0]
    values = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    assert [v["external_id"] for v in values] == ["r1", "r2"]
    assert values[0]["first_name"] == "=2+2"  # text, never a formula (below)
    audit.refresh_from_db()
    assert (audit.downloads, audit.rows) == (1, 2)


def xlsx_sheet(client, response):
    download = client.get(f"{response.url}download/")
    return openpyxl.load_workbook(io.BytesIO(b"".join(download.streaming_content))).active


def test_xlsx_cells_are_typed_and_text_is_never_a_formula(client, manager, client_a,
                                                          inline_worker):  # fmt: skip
    """Numbers and dates a spreadsheet can sum and sort; text stored as text, shown as it is
    (an apostrophe would show literally in an XLSX text cell)."""
    from customfields.models import CustomField
    from tests.factories import make_file_delivery

    CustomField.objects.create(client=client_a, name="Serial", kind="datetime",
                               source="opted_in_at", date_output="excel")  # fmt: skip
    delivery = make_file_delivery(client_a, columns=[
        {"source": source, "output": output} for source, output in [
            ("id", "Id"), ("age", "Age"), ("bid_price", "Price"), ("birth_date", "Born"),
            ("opted_in_at", "Opted in"), ("Serial", "Serial"), ("first_name", "First"),
            ("last_name", "Last"), ("address2", '=HYPERLINK("http://x","h")'),
        ]
    ])  # fmt: skip
    referral = make_referral(
        client_a, age=41, bid_price="2.5", birth_date="1984-02-29", first_name="=2+2",
        last_name="-Smith", address2="", opted_in_at="2025-07-01T11:30:00+00:00",
    )  # fmt: skip
    client.force_login(manager)
    response = inline_worker(client, client=client_a.pk, format="xlsx",
                             column_set=f"delivery:{delivery.pk}")  # fmt: skip
    header, row = xlsx_sheet(client, response).iter_rows(min_row=1, max_row=2)
    assert [(c.value, c.data_type) for c in header][-1] == ('=HYPERLINK("http://x","h")', "s")
    values = [c.value for c in row]
    # Europe/London: 11:30 UTC is 12:30 in summer; Excel's day 45839 is 2025-07-01.
    assert values == [
        referral.pk, 41, 2.5, dt.datetime(1984, 2, 29), dt.datetime(2025, 7, 1, 12, 30),
        45839.52083, "=2+2", "-Smith", None,
    ]  # fmt: skip
    assert [c.data_type for c in row] == ["n", "n", "n", "d", "d", "n", "s", "s", "n"]
    assert row[3].number_format == "yyyy-mm-dd" and row[4].number_format.startswith("yyyy-mm-dd h")
    assert row[6].quotePrefix and row[7].quotePrefix and header[-1].quotePrefix


def test_a_csv_above_the_threshold_goes_to_the_worker_with_the_same_content(
    client, manager, client_a, inline_worker, settings
):
    for n in range(5):
        make_referral(client_a, external_id=f"r{n}")
    client.force_login(manager)
    streamed = csv_rows(b"".join(client.post(URL, {
        "client": client_a.pk, "time_field": "created_at", "column_set": "standard",
        "format": "csv"}).streaming_content))  # fmt: skip
    settings.EXPORT_SYNC_MAX_ROWS = 2
    response = inline_worker(client, client=client_a.pk)
    assert response.status_code == 302
    body = b"".join(client.get(f"{response.url}download/").streaming_content)
    assert list(csv.DictReader(io.StringIO(body.decode()))) == streamed


def test_another_users_export_is_not_found_and_an_expired_one_is_gone(
    client, manager, user_a, user_b, client_a, inline_worker
):
    make_referral(client_a)
    client.force_login(user_a)
    response = inline_worker(client, client=client_a.pk, format="xlsx")
    audit = ExportAudit.objects.get()

    client.force_login(user_b)
    assert client.get(response.url).status_code == 404
    assert client.get(f"{response.url}download/").status_code == 404

    client.force_login(user_a)
    ExportAudit.objects.filter(pk=audit.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert client.get(f"{response.url}download/").status_code == 410
    assert exports_purge_expired() == 1
    assert not Path(audit.file_path).exists()
    assert ExportAudit.objects.get().status == "expired"


@pytest.mark.postgres
def test_a_background_csv_reports_progress_as_its_rows_are_written(client_a, monkeypatch,
                                                                   tmp_path):  # fmt: skip
    """The worker's COPY reported no row until the end: the bar jumped from 0 to done."""
    from exports import services as exports

    for _ in range(5):
        make_referral(client_a)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)
    monkeypatch.setattr(exports, "_CHUNK", 1)  # every row its own chunk
    reported: list[int] = []
    request = exports.ExportRequest(client=client_a)
    assert exports._write_file(request, tmp_path / "x.csv", reported.append) == 5
    assert reported == [2, 4]


def test_each_download_is_audited_with_who_and_when_in_utc(client, manager, user_a, client_a,
                                                           inline_worker):  # fmt: skip
    make_referral(client_a)
    client.force_login(user_a)
    response = inline_worker(client, client=client_a.pk, format="xlsx")
    client.get(f"{response.url}download/")
    client.force_login(manager)
    client.get(f"{response.url}download/")
    audit = ExportAudit.objects.get()
    log = list(audit.download_log.all())
    assert [d.user for d in log] == [user_a, manager]
    assert audit.downloads == 2 and audit.last_downloaded_at == log[-1].downloaded_at

    page = client.get(f"/admin/referrals/exportaudit/{audit.pk}/change/").content.decode()
    for download in log:
        assert f"{download.downloaded_at:%Y-%m-%d %H:%M:%S} UTC" in page
    assert user_a.username in page and manager.username in page
    listing = client.get("/admin/referrals/exportaudit/").content.decode()
    assert "Started (UTC)" in listing and f"{audit.started_at:%Y-%m-%d %H:%M:%S} UTC" in listing
