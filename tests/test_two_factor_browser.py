"""Two-factor login in a real browser: the first login's enrolment page, then the code page
of the next login, a wrong code on the way. Each page is saved at 1366 and 1920 px wide under
``var/screenshots/two-factor/`` (to look at)."""

from __future__ import annotations

import pytest

from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD
from tests.processes import ROOT
from tests.two_factor import Authenticator

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = ROOT / "var" / "screenshots" / "two-factor"


def shoot(page, name: str) -> None:
    for width in (1366, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def test_a_manager_enrols_then_logs_in_with_a_code(live_server, manager):
    SHOTS.mkdir(parents=True, exist_ok=True)
    app = Authenticator()
    with browser_page() as page:

        def enrol_page(page) -> None:
            assert page.url.endswith("/admin/two-factor/enrol/")
            qr = page.locator(".two-factor-qr svg")
            box = qr.bounding_box()
            assert box and 150 < box["width"] < 250 and box["width"] == box["height"]
            assert page.locator("#content").is_visible()
            shoot(page, "enrol")

        log_in(page, live_server.url, "manager", PASSWORD, app=app, at_second_step=enrol_page)
        assert page.url.endswith("/admin/")
        assert "Two-factor login is set up" in page.inner_text(".messagelist")

        page.click("#logout-form button")
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "manager")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/two-factor/code/")
        shoot(page, "code")

        page.fill("#id_token", app.wrong_code("manager"))
        page.click("input[type=submit]")
        assert "That code is not right" in page.inner_text("#content")
        assert page.input_value("#id_token") == ""  # emptied for the next code
        shoot(page, "code-wrong")

        page.wait_for_timeout(1100)  # django-otp's back-off after a wrong code
        page.fill("#id_token", app.code("manager"))
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        assert page.url.endswith("/admin/")

        page.click("text=Two-factor login")
        assert "Two-factor login is on" in page.inner_text("#content")
        shoot(page, "account")


def test_a_client_user_turns_it_on_from_their_page_and_a_lockout_says_so(
    live_server, user_a, settings
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    app = Authenticator()
    with browser_page() as page:
        log_in(page, live_server.url, "alice", PASSWORD, app=app)  # no code asked
        page.click("text=Two-factor login")
        assert "Two-factor login is off" in page.inner_text("#content")
        shoot(page, "account-off")
        app.add("alice", page.inner_text("#two-factor-secret"))
        page.fill("#id_token", app.code("alice"))
        page.click("input[type=submit]")
        assert "Two-factor login is on" in page.inner_text(".messagelist")

        page.click("#logout-form button")
        for _ in range(settings.AXES_FAILURE_LIMIT):
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "alice")
            page.fill("#id_password", "not her password")
            page.click("input[type=submit]")
        assert "Too many failed logins" in page.inner_text("#content")
        shoot(page, "locked-out")
