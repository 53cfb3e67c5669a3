"""A client user, in a real browser: logs in, exports a date range as CSV, and gets exactly
their own referrals; edited URLs never reach another client's data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.utils import timezone

from referrals.models import ExportAudit, ExportDownload
from tests.browser import browser_page
from tests.browser import log_in as browser_log_in
from tests.conftest import PASSWORD
from tests.factories import make_referral

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_client_user_exports_their_referrals_and_nothing_else(live_server, user_a, client_a,
                                                              client_b):  # fmt: skip
    mine = {make_referral(client_a, external_id=f"mine-{n}").external_id for n in range(3)}
    theirs = make_referral(client_b, external_id="theirs-1", campaign="b-only")
    today = timezone.now().astimezone(client_a.zone).date().isoformat()

    with browser_page(downloads=True) as page:
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_username", user_a.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/referrals/referral/")
        page.click("a.export_link")  # import-export's button
        page.fill("#id_start", today)
        page.fill("#id_end", today)
        with page.expect_download() as download_info:
            page.click("#export-submit")
        path = download_info.value.path()
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
        assert {row["external_id"] for row in rows} == mine
        assert {row["client"] for row in rows} == {client_a.slug}

        # Another client's referral, by id, in every place an id goes: 404, and nothing shown.
        base = f"{live_server.url}/admin/referrals/referral"
        for url in (f"{base}/{theirs.pk}/change/", f"{base}/{theirs.pk}/history/",
                    f"{live_server.url}/api/v1/referrals/{theirs.pk}/"):  # fmt: skip
            response = page.goto(url)
            assert response.status == 404, url
            assert "theirs-1" not in page.content()
        page.goto(f"{base}/?client={client_b.pk}&q=theirs-1")  # the search box echoes the term
        assert page.locator("#result_list").count() == 0
        assert "0 results" in page.content()


def test_an_account_manager_exports_the_lists_search_with_a_bom(live_server, manager, client_a,
                                                                client_b, tmp_path):  # fmt: skip
    """The list's search carries into the export; campaigns say whose they are; the CSV
    starts with the BOM Excel needs for "Zoë"; the audit shows its times in UTC. Screenshots
    at 1366 and 1920 wide."""
    make_referral(client_a, external_id="zoe", first_name="Zoë", campaign="spring")
    make_referral(client_a, external_id="other", campaign="spring")
    make_referral(client_b, external_id="b-1", campaign="spring")

    def screenshots(page, name: str) -> None:
        for width in (1366, 1920):
            page.set_viewport_size({"width": width, "height": 900})
            page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)

    with browser_page(downloads=True) as page:
        log_in(page, live_server, manager)
        page.goto(f"{live_server.url}/admin/referrals/referral/?client={client_a.pk}&q=ZOE")
        page.click("a.export_link")
        assert page.input_value("#id_search") == "ZOE"
        assert page.is_checked("#id_bom")
        options = page.locator("#id_campaigns option").all_inner_texts()
        assert options == ["Alpha Corp: spring (spring)", "Bravo Corp: spring (spring)"]
        screenshots(page, "export")
        with page.expect_download() as download_info:
            page.click("#export-submit")
        data = Path(download_info.value.path()).read_bytes()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [(row["external_id"], row["first_name"]) for row in rows] == [("zoe", "Zoë")]

    # The audit with a download in its log (a streamed export has none of its own).
    audit = ExportAudit.objects.get()
    ExportDownload.objects.create(audit=audit, user=manager)
    with browser_page() as page:
        log_in(page, live_server, manager)
        for view, name in (("", "audit-list"), (f"{audit.pk}/change/", "audit")):
            page.goto(f"{live_server.url}/admin/referrals/exportaudit/{view}")
            assert f"{audit.started_at:%Y-%m-%d %H:%M:%S} UTC" in page.content()
            screenshots(page, name)


def log_in(page, live_server, user) -> None:
    browser_log_in(page, live_server.url, user.username, PASSWORD)
