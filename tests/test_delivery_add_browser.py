"""Adding a delivery in a real browser, at 1366 and 1920 px: the admin first asks which kind
(the registry's channels, a line each), then shows only that kind's sections. Screenshots go
to ``var/screenshots/delivery-add/``; the page heights are printed (docs/ARCHITECTURE.md,
"Channels", has them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from deliveries.channels import CHANNELS
from deliveries.models import Delivery
from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD
from tests.processes import ROOT
from tests.test_admin_pages_browser import SIZES
from tests.two_factor import Authenticator

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = ROOT / "var" / "screenshots" / "delivery-add"
ADD = "/admin/deliveries/delivery/add/"
# A field only each kind has, and one only the file kinds have.
OWN = {"api": "url", "sftp": "host_key", "ftps": "certificate_fingerprint"}
FILE_ONLY = "file_name_template"


@pytest.fixture
def page(live_server, manager) -> Iterator:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with browser_page() as opened:
        log_in(opened, live_server.url, manager.username, PASSWORD, app=Authenticator())
        yield opened


def shoot(page, name: str) -> dict[int, int]:
    heights = {}
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        heights[width] = page.evaluate("document.documentElement.scrollHeight")
    print(name, heights)
    return heights


def test_add_asks_the_kind_then_shows_only_its_settings(live_server, page, client_a):
    page.goto(f"{live_server.url}{ADD}")
    shoot(page, "chooser")
    for channel in CHANNELS.values():
        assert channel.description in page.inner_text("#delivery-kinds")
    page.click("#kind-sftp")  # the chooser's link: the form of that kind
    assert page.url.endswith("?kind=sftp")
    for kind in CHANNELS:
        page.goto(f"{live_server.url}{ADD}?kind={kind}")
        shoot(page, f"add-{kind}")
        fields = {f: page.locator(f"#id_{f}").count() for f in (*OWN.values(), FILE_ONLY)}
        assert fields == {
            **{f: int(k == kind) for k, f in OWN.items()},
            FILE_ONLY: int(CHANNELS[kind].batch),
        }, kind

    page.goto(f"{live_server.url}{ADD}?kind=api")
    page.select_option("#id_client", str(client_a.pk))
    page.fill("#id_name", "CRM")
    page.fill("#id_url", "https://crm.example.com/leads")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    delivery = Delivery.objects.get(name="CRM")
    assert delivery.kind == "api" and delivery.signing_secret.startswith("whsec_")
    page.goto(f"{live_server.url}/admin/deliveries/delivery/{delivery.pk}/change/")
    assert page.locator("#id_kind").count() == 0  # shown, not changeable
    assert page.locator(f"#id_{FILE_ONLY}").count() == 0
    shoot(page, "change-api")
