"""The admin's pages as people see them, in a real browser at 1366x768 and 1920x1080: the home
pages, a delivery, the lists, the export form and a background export's page. Each page is
saved under ``var/screenshots/admin-pages/`` (to look at) and checked for what made the admin
look unfinished: headers broken letter by letter, sideways scrolls, an empty error box."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.utils import timezone

from deliveries.models import Batch, Delivery, DeliveryItem
from deliveries.pausing import delivery_pause
from deliveries.services import delivery_save
from demo.seed import demo_seed
from exports.services import ExportRequest
from referrals.models import Client, ExportAudit, Referral
from tests.browser import browser_page
from tests.browser import log_in as browser_log_in
from tests.factories import make_file_delivery
from tests.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SHOTS = ROOT / "var" / "screenshots" / "admin-pages"
SIZES = ((1366, 768), (1920, 1080))


# Each word of a table header that the browser split over two lines or more ("F I E L D S").
WORDS_SPLIT_ACROSS_LINES = """() => {
  const split = [];
  for (const th of document.querySelectorAll("thead th")) {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
        if (lines.size > 1) split.push(match[0]);
      }
    }
  }
  return split;
}"""


@dataclass
class Scene:
    base: str
    passwords: dict[str, str]
    client: Client
    api: Delivery
    files: Delivery
    export: ExportAudit


@pytest.fixture(scope="module", autouse=True)
def _fresh_folder() -> None:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)


@pytest.fixture
def scene(live_server) -> Scene:
    """The demo's month of referrals, most of them delivered in real time by a second API
    delivery (so the chart has two series), a file delivery with a sent batch, and a finished
    background export."""
    logins = demo_seed(referrals=600, inbox_base_url=live_server.url)
    client = Client.objects.get(slug="acme-demo")
    crm = delivery_save(Delivery(
        client=client, name="CRM", kind=Delivery.Kind.API, url="https://crm.example.com/hook",
        starts_at=timezone.now() - dt.timedelta(days=31),
    ))  # fmt: skip
    delivered = []
    for item in DeliveryItem.objects.filter(delivery=crm).select_related("referral"):
        if item.referral.pk % 10:  # nine in ten delivered, a minute after they were stored
            item.status, item.delivered_at = "delivered", item.referral.created_at
            delivered.append(item)
    DeliveryItem.objects.bulk_update(delivered, ["status", "delivered_at"])
    files = make_file_delivery(client, name="Nightly drop", host="sftp.acme.example")
    Batch.objects.create(delivery=files, number=1, status="sent", rows=42, run_at=timezone.now(),
                         started_at=timezone.now(), finished_at=timezone.now(),
                         files=[{"name": "acme_000001.csv"}])  # fmt: skip
    # A delivery that needs attention, its reason long, as a wrong host key's is.
    stopped = make_file_delivery(client, name="Partner drop", host="sftp.partner.example")
    delivery_pause(stopped, "The server's host key is not the pinned one: it offered "
                   "SHA256:Qm9ndXMga2V5IGZvciBhIHRlc3Qgb2YgdGhlIGFkbWluIGxpc3Q and the delivery "
                   "pins SHA256:UGlubmVkIGtleSBmb3IgYSB0ZXN0IG9mIHRoZSBhZG1pbiBsaXN0. Check with "
                   "the server's owner, then fetch the host key again.")  # fmt: skip
    Delivery.objects.filter(pk=stopped.pk).update(
        failing_since=timezone.now() - dt.timedelta(hours=3), last_error=stopped.paused_reason
    )
    user = logins[1].username
    export = ExportAudit.objects.create(
        user=client.memberships.get().user, client=client, format="xlsx", status="done",
        filters=ExportRequest(client=client, format="xlsx", search="ada").filters(),
        rows=Referral.objects.count(), total_rows=Referral.objects.count(),
        file_name="referrals.xlsx", completed_at=timezone.now(),
        expires_at=timezone.now() + dt.timedelta(hours=24),
    )  # fmt: skip
    assert export.user.username == user
    return Scene(live_server.url, {login.username: login.password for login in logins},
                 client, crm, files, export)  # fmt: skip


@pytest.fixture
def page() -> Iterator:
    with browser_page() as opened:
        yield opened


def log_in(page, scene: Scene, username: str) -> None:
    browser_log_in(page, scene.base, username, scene.passwords[username])


def shoot(page, name: str, *, full_page: bool = True) -> None:
    """Both sizes (a list's first screen only: a hundred rows say no more); at each, no table
    header wraps inside a word and neither the page nor a list scrolls sideways."""
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=full_page)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
        hidden = page.evaluate("""[...document.querySelectorAll('.results')]
            .some(list => list.scrollWidth > list.clientWidth)""")
        assert not hidden, (name, width, "columns behind a sideways scroll")
        broken = page.evaluate(WORDS_SPLIT_ACROSS_LINES)
        assert not broken, (name, width, broken)


def test_the_account_managers_home_page(scene, page):
    log_in(page, scene, "manager")
    shoot(page, "home-manager")
    chart = page.locator("#referrals-chart")
    assert chart.locator("rect.stored").count() == 30
    assert chart.locator("circle.delivered").count() == 30  # the second series, drawn over
    assert chart.locator("text.axis").filter(has_text="today").count() == 1
    assert page.locator("#recent-actions-module").count() == 1  # staff change things


def test_the_client_users_home_page(scene, page):
    log_in(page, scene, "acme")
    assert page.locator("#recent-actions-module").count() == 0  # they change nothing
    assert "(Europe/London)" in page.locator("#chart-section h3").inner_text()
    shoot(page, "home-client")


def test_a_real_time_delivery_for_staff_and_for_its_client(scene, page):
    log_in(page, scene, "manager")
    page.goto(f"{scene.base}/admin/deliveries/delivery/{scene.api.pk}/change/")
    header = page.locator("#delivery-attempts h2 a")
    assert header.evaluate("a => getComputedStyle(a).color") != header.evaluate(
        "a => getComputedStyle(a.closest('h2')).backgroundColor"
    )
    shoot(page, "delivery-api-manager")
    page.goto(f"{scene.base}/admin/deliveries/delivery/{scene.files.pk}/change/")
    shoot(page, "delivery-files-manager")
    page.click("#logout-form button")
    log_in(page, scene, "acme")
    page.goto(f"{scene.base}/admin/deliveries/delivery/{scene.api.pk}/change/")
    shoot(page, "delivery-api-client")


def test_the_lists_fit_the_screen(scene, page):
    log_in(page, scene, "manager")
    for name, url in (
        ("referrals", "referrals/referral/"),
        ("deliveries", "deliveries/delivery/"),
        ("attempts", "deliveries/attempt/"),
        ("audits", "referrals/exportaudit/"),
    ):
        page.goto(f"{scene.base}/admin/{url}")
        shoot(page, f"list-{name}-manager", full_page=False)
    what = page.locator("td.field-what").first.inner_text()  # words, not JSON
    assert what == 'stored: any day, search "ada", columns: standard', what
    page.click("#logout-form button")
    log_in(page, scene, "acme")
    page.goto(f"{scene.base}/admin/referrals/referral/")
    shoot(page, "list-referrals-client", full_page=False)


def test_the_export_pages(scene, page):
    log_in(page, scene, "acme")
    # A background export the page follows: once ready, its title says so too.
    ExportAudit.objects.filter(pk=scene.export.pk).update(status="running", expires_at=None)
    page.goto(f"{scene.base}/admin/referrals/referral/export/{scene.export.pk}/")
    assert page.locator("#content h1").inner_text() == "Export in progress"
    assert not page.locator("#export-error").is_visible()
    ExportAudit.objects.filter(pk=scene.export.pk).update(
        status="done", expires_at=timezone.now() + dt.timedelta(hours=24)
    )
    page.wait_for_selector("#export-download", state="visible")
    assert page.locator("#content h1").inner_text() == "Export ready"
    assert page.title().startswith("Export ready")
    assert page.locator("#export-expires").inner_text().endswith(" UTC")

    page.goto(f"{scene.base}/admin/referrals/referral/export/")
    shoot(page, "export-form-client")
    page.goto(f"{scene.base}/admin/referrals/referral/export/{scene.export.pk}/")
    assert not page.locator("#export-error").is_visible()  # no empty red box on success
    assert page.locator("#export-download").is_visible()
    assert page.title().startswith("Export ready")
    favicon = page.request.get(f"{scene.base}/favicon.ico")
    assert favicon.ok and favicon.headers["content-type"].startswith("image/svg")
    shoot(page, "export-ready-client")


def test_the_export_form_for_staff_with_one_client(scene, page):
    log_in(page, scene, "manager")
    page.goto(f"{scene.base}/admin/referrals/referral/export/")
    assert page.input_value("#id_client") == str(scene.client.pk)  # the only one: chosen
    shoot(page, "export-form-manager")


def test_a_clients_retention_and_the_purge_runs(scene, page):
    from privacy.runs import retention_purge

    Client.objects.filter(pk=scene.client.pk).update(retention_days=400)
    run = retention_purge()
    log_in(page, scene, "manager")
    page.goto(f"{scene.base}/admin/referrals/client/{scene.client.pk}/change/")
    assert page.locator("#id_retention_days").is_editable()
    page.locator("#id_retention_days").scroll_into_view_if_needed()
    shoot(page, "client-retention-manager")
    page.goto(f"{scene.base}/admin/privacy/purgerun/")
    shoot(page, "list-purge-runs-manager", full_page=False)
    page.goto(f"{scene.base}/admin/privacy/purgerun/{run.pk}/change/")
    assert "ledger items: 0" in page.locator("#content").inner_text()
    shoot(page, "purge-run-manager")
    page.click("#logout-form button")
    log_in(page, scene, "acme")
    page.goto(f"{scene.base}/admin/referrals/client/{scene.client.pk}/change/")
    assert page.locator("#id_retention_days").count() == 0  # read-only for its users
    assert "Keep referrals for (days)" in page.locator("#content").inner_text()
    shoot(page, "client-retention-client")
