"""An account manager types a custom field in the admin and sees its preview live."""

from __future__ import annotations

import pytest

from customfields.models import CustomField
from tests.browser import browser_page, log_in
from tests.conftest import PASSWORD
from tests.factories import make_referral

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_live_preview_shows_output_before_saving(live_server, manager, client_a, tmp_path):
    make_referral(client_a, external_id="ref-1", first_name="ada", last_name="LOVELACE")
    with browser_page() as page:
        log_in(page, live_server.url, manager.username, PASSWORD,
               next_path="/admin/customfields/customfield/add/")  # fmt: skip
        page.click("#id_client + .select2 .select2-selection")  # the client autocomplete
        page.keyboard.type("Alpha")
        page.click(".select2-results__option >> text=Alpha Corp")
        page.fill("#id_name", "FullName")
        page.select_option("#id_kind", "template")
        page.fill("#id_template", "{{{First_Name}}} / {{{last_name}}}")
        page.fill("#preview-sample", '{"first_name": "Grace", "last_name": "Hopper"}')
        page.click("#preview-run")
        results = page.locator("#preview-results tbody")
        results.locator("text=ada / LOVELACE").wait_for(timeout=10_000)
        assert "Grace / Hopper" in results.inner_text()
        page.screenshot(path=str(tmp_path / "preview.png"), full_page=True)

        page.fill("#id_template", "{{{nope}}}")  # typing triggers the preview again
        results.locator("text=Unknown field").wait_for(timeout=10_000)
    assert not CustomField.objects.exists()
