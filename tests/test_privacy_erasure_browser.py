"""The referral list's erasure action as an account manager uses it in a browser: the
confirmation page's counts, then the receipt list. Client users are not offered it."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy.models import ErasureReceipt
from referrals.models import Referral
from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD
from tests.factories import make_api_delivery, make_referral

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
pytestmark = pytest.mark.django_db(transaction=True)


def _screenshots(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1366, 1920):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


def test_a_manager_confirms_the_counts_then_finds_the_receipt(
    live_server, manager, client_a, client_b
):
    make_api_delivery(client_a, "https://crm.example.com/leads")
    chosen = make_referral(client_a, email="ada@example.com")
    make_referral(client_b, email="ADA@example.com")
    kept = make_referral(client_a, email="grace@example.com")
    with browser_page() as page:
        log_in(page, live_server.url, "manager", PASSWORD,
               next_path="/admin/referrals/referral/")  # fmt: skip
        page.check(f"input[name=_selected_action][value='{chosen.pk}']")
        page.select_option("select[name=action]", "erase_people")
        page.click("button[name=index]")
        page.wait_for_selector("#erase-preview")
        row = page.inner_text("#erase-preview tbody tr")
        assert "ada@example.com (in every client)" in row and "\t2\t1\t0\t0\t0" in row, row
        _screenshots(page, "erasure-confirmation")
        page.check("input[name=scope][value=own]")
        page.click("input[name=recount]")
        row = page.inner_text("#erase-preview tbody tr")
        assert f"(in {client_a.name})" in row and "\t1\t1\t0\t0\t0" in row, row
        page.click("button[name=confirm]")
        page.wait_for_selector(".messagelist")
        assert "Erased 1 person: 1 referrals" in page.inner_text(".messagelist")
        page.goto(f"{live_server.url}/admin/privacy/erasurereceipt/")
        _screenshots(page, "erasure-receipts")
        assert client_a.name in page.inner_text("#result_list")
        assert "ada@" not in page.content()

    assert set(Referral.objects.values_list("email", flat=True)) == {"ADA@example.com", kept.email}
    receipt = ErasureReceipt.objects.get()
    assert (receipt.client, receipt.source, receipt.referrals) == (client_a, "admin", 1)


def test_client_users_are_not_offered_the_erasure(client, user_a, client_a):
    make_referral(client_a)
    client.force_login(user_a)

    page = client.get("/admin/referrals/referral/")
    refused = client.post("/admin/referrals/referral/", {
        "action": "erase_people", "_selected_action": [Referral.objects.get().pk],
        "confirm": "yes",
    })  # fmt: skip

    assert page.status_code == 200 and b"erase_people" not in page.content
    assert Referral.objects.exists() and not ErasureReceipt.objects.exists()
    assert refused.status_code in (200, 302)
