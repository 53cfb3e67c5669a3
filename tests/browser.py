"""Headless Debian chromium through Playwright, for tests that act as a person would."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.two_factor import Authenticator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that keep chromium off the network: this machine reaches none of Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def browser_page(downloads: bool = False) -> Iterator:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's async guard would refuse them. Only while the browser
    # runs: child processes started by later tests inherit the environment, and the deployment
    # check refuses this variable.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(accept_downloads=downloads)
                yield context.new_page()
            finally:
                browser.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# The authenticator app of whoever the browser tests log in as: keys taken from enrolment pages.
AUTHENTICATOR = Authenticator()


def log_in(
    page,
    base: str,
    username: str,
    password: str,
    *,
    next_path: str = "",
    app: Authenticator = AUTHENTICATOR,
    at_second_step: Callable | None = None,
) -> None:
    """Log in as a person does: the password, then, when asked, a code from ``app``. On a
    first login the enrolment page shows the key, which ``app`` takes as typed from the page.
    ``at_second_step(page)`` runs on the code or enrolment page before the code goes in."""
    page.goto(f"{base}/admin/login/" + (f"?next={next_path}" if next_path else ""))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()
    if "/admin/two-factor/" in page.url:
        if page.locator("#two-factor-secret").count():
            app.add(username, page.inner_text("#two-factor-secret"))
        if at_second_step is not None:
            at_second_step(page)
        page.fill("#id_token", app.code(username))
        page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
