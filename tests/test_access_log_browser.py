"""The access log in a real browser: a superuser opens a referral, then finds that view (and a
client user's and an account manager's) in Privacy > Referral access log. The list and a row are
saved at 1366 and 1920 px wide under ``var/screenshots/access-log/`` (to look at)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from privacy.models import AccessLogEntry
from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD, api_client_for
from tests.factories import make_referral
from tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = ROOT / "var" / "screenshots" / "access-log"


def shoot(page, name: str) -> None:
    for width in (1366, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


def test_a_superuser_finds_views_in_the_access_log(live_server, manager, user_a, client_a,
                                                   client_b):  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    mine = [make_referral(client_a) for _ in range(3)]
    theirs = make_referral(client_b)
    api_client_for(user_a).get("/api/v1/referrals/")
    api_client_for(user_a).get(f"/api/v1/referrals/{theirs.pk}/")  # refused: 404
    api_client_for(manager).get("/api/v1/referrals/", {"page_size": 2})

    with browser_page() as page:
        log_in(page, live_server.url, "root", PASSWORD)
        page.goto(f"{live_server.url}/admin/referrals/referral/{mine[0].pk}/change/")
        page.goto(f"{live_server.url}/admin/")
        page.click("text=Referral access log")
        page.wait_for_url("**/admin/privacy/accesslogentry/")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 4
        first = rows.first.inner_text()
        assert "root" in first and "referral page" in first and "127.0.0.1" in first
        assert "404 refused" in page.inner_text("#result_list")
        shoot(page, "list")

        page.click(f"#changelist-filter a:text-is('{client_b.name}')")
        assert page.locator("#result_list tbody tr").count() == 2  # both ask for B's data
        page.click("#result_list tbody tr >> nth=0 >> th a")
        assert "v1_referrals_list" in page.content() or "v1_referrals_retrieve" in page.content()
        assert page.locator("input[name=_save]").count() == 0
        shoot(page, "entry")
    assert AccessLogEntry.objects.filter(username="root").count() == 1
