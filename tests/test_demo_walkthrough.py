"""A newcomer's first ten minutes with ``scripts/run-demo``, in a real browser.

Runs the demo as the README says (embedded default: SQLite, file-system broker, its four
processes), checks that web, worker and beat run and the schema, docs and health answer,
logs in with the printed logins, and walks the README's "What to click first":
no alert on the first page, a month of referrals in the chart, a test referral and a real one
arriving signed in the webhook inbox, an export as the client user. Every page is saved at
1366x768 and 1920x1080 under ``var/screenshots/demo-walkthrough/`` (to look at; the README's
pictures in docs/screenshots/ are copies of three of them).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import urllib.request
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import browser_page, log_in
from tests.processes import BIN, ROOT, Demo, http_status, run_demo, wait_for

pytestmark = pytest.mark.slow
SHOTS = ROOT / "var" / "screenshots" / "demo-walkthrough"
SIZES = ((1366, 768), (1920, 1080))


def shoot(page, name: str) -> None:
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Demo]:
    """One demo for this module's tests: starting it (migrate, seed, four processes) is most of
    their time. The first test only looks; the walkthrough then changes what it must."""
    with run_demo(tmp_path_factory.mktemp("demo")) as running:
        yield running


def test_run_demo_serves_the_admin_login_the_schema_and_health(demo):
    """The README's run command starts web, worker and beat on the embedded default."""
    # The schema needs a login; the docs page sends a browser to the login page first.
    assert http_status(f"{demo.base}/api/schema/") == 401
    assert http_status(f"{demo.base}/api/docs/") == 200
    assert http_status(f"{demo.base}/healthz") == 200
    log = demo.log.read_text()
    assert "username 'manager'" in log and "username 'acme'" in log
    assert "beat: Starting" in log
    assert demo.process.poll() is None


def test_a_newcomer_sees_every_channel_work_in_the_demo(demo):
    base, log = demo.base, demo.log
    logins = dict(re.findall(r"username '(\w+)', password '([^']+)'", log.read_text()))
    assert set(logins) == {"manager", "acme"}
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)

    with browser_page(downloads=True) as page:
        # 1. The first login: the account manager sets up two-factor login with the QR code
        # (or key) the page shows, as the printed logins say; then no alert, a month of
        # referrals in the chart.
        assert "authenticator app" in log.read_text()
        log_in(page, base, "manager", logins["manager"],
               at_second_step=lambda enrol: shoot(enrol, "00-two-factor-enrol"))  # fmt: skip
        assert page.locator("#failing-deliveries").count() == 0
        bars = page.locator("#referrals-chart rect:not(.delivered)")
        assert bars.count() == 30
        heights = [float(bars.nth(i).get_attribute("height")) for i in range(30)]
        assert sum(1 for h in heights if h > 0) >= 28
        shoot(page, "01-home-manager")

        # 2. The real-time delivery: a test referral goes to the inbox, signed, and answered.
        page.click("text=Webhook inbox (demo)")
        page.wait_for_selector("text=Send test referral")
        shoot(page, "02-inbox-delivery")
        page.click("text=Send test referral")
        success = page.locator(".messagelist .success")
        assert re.search(r"Test referral sent: 200 in \d+ ms, delivered", success.inner_text())
        assert page.locator("#failing-deliveries").count() == 0
        shoot(page, "03-inbox-delivery-tested")

        page.goto(f"{base}/admin/demo/inboxmessage/")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 1
        assert rows.first.locator("img[alt=True]").count() == 1  # the signature's tick
        assert "msg_test_" in rows.first.inner_text()
        shoot(page, "04-inbox")
        rows.first.locator("th a, td a").first.click()
        detail = page.locator("#content-main").inner_text()
        assert "webhook-signature" in detail and "email_hash" in detail
        shoot(page, "05-inbox-message")

        # 3. A real referral through the ingestion API arrives too (the api worker's send).
        token = subprocess.run(
            [str(BIN / "python"), "manage.py", "drf_create_token", "manager"],
            cwd=ROOT, env=demo.env, capture_output=True, text=True, check=True,
        ).stdout.split()[2]  # fmt: skip
        record = {"client": "acme-demo", "campaign": "spring-sale", "external_id": "walk-1",
                  "email": "walk@example.com", "first_name": "Ada", "gender": "F",
                  "opted_in_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{base}/api/v1/referrals/", data=json.dumps(record).encode(), method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            assert response.status == 201

        def arrived() -> bool:
            page.goto(f"{base}/admin/demo/inboxmessage/")
            return "walk-1" in page.locator("#result_list").inner_text()

        wait_for(arrived, timeout=60, what="the ingested referral in the inbox",
                 logs=lambda: log.read_text()[-3000:])  # fmt: skip
        newest = page.locator("#result_list tbody tr").first
        assert newest.locator("img[alt=True]").count() == 1
        shoot(page, "06-inbox-after-ingest")

        # 4. The client user: their own home page, the delivery's attempts, an export.
        page.click("#logout-form button")
        log_in(page, base, "acme", logins["acme"])
        assert page.locator("#failing-deliveries").count() == 0
        assert "Your recent exports" in page.content()
        assert re.search(r"CSV, \d+ rows", page.locator("#dashboard").inner_text())
        shoot(page, "07-home-client")

        page.click("#home-deliveries >> text=Webhook inbox (demo)")
        attempts = page.locator("#content").inner_text()  # the test and the real referral
        assert re.search(r"\ttest\t1\t200\t", attempts) and attempts.count("Delivered") >= 2
        shoot(page, "08-delivery-client")

        page.goto(f"{base}/admin/referrals/referral/")
        shoot(page, "09-referrals-client")
        page.click("a.export_link")
        today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/London")).date()
        page.fill("#id_start", (today - dt.timedelta(days=6)).isoformat())
        page.fill("#id_end", today.isoformat())
        option = page.locator("#id_column_set option", has_text="Webhook inbox (demo)")
        page.select_option("#id_column_set", option.get_attribute("value"))
        shoot(page, "10-export-client")
        with page.expect_download() as download_info:
            page.click("#export-submit")
        text = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and set(rows[0]) == {"id", "name", "email", "email_hash", "gender", "city",
                                         "opted_in", "source"}  # fmt: skip
        assert {row["source"] for row in rows} == {"Rokt demo"}
        assert "walk-1" in {row["id"] for row in rows}
