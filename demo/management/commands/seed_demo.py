from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from demo.seed import (
    CLIENT_USER,
    MANAGER,
    demo_exists,
    demo_inbox_point,
    demo_logins_reset,
    demo_seed,
)

# Where scripts/run-demo serves (its WEB_BIND): the inbox delivery sends there, on loopback.
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 (read, not bound to)


class Command(BaseCommand):
    help = (
        "Create the demo (a client, 1,000 referrals over 30 days, custom fields, a real-time "
        "delivery to the webhook inbox, logins); on a later run, --reset-logins prints new "
        "passwords (and two-factor login is set up again)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--referrals", type=int, default=1000)
        parser.add_argument(
            "--reset-logins", action="store_true",
            help="Give the demo's logins new passwords and print them; forget their "
            "two-factor devices.",
        )  # fmt: skip

    def handle(self, *args, referrals: int, reset_logins: bool, **options) -> None:
        base_url = _inbox_base_url(os.environ.get("WEB_BIND", "127.0.0.1:8000"))
        if not demo_exists():
            logins = demo_seed(referrals=referrals, inbox_base_url=base_url)
            self.stdout.write(self.style.SUCCESS(f"Demo client Acme Demo: {referrals} referrals."))
        else:
            logins = demo_logins_reset() if reset_logins else []
            self.stdout.write("Demo data exists already.")
        url = demo_inbox_point(base_url)
        self.stdout.write(f"  The real-time delivery 'Webhook inbox (demo)' sends to {url}")
        for login in logins:
            self.stdout.write(
                f"  {login.role}: username {login.username!r}, password {login.password!r}"
            )
            if login.two_factor:
                self.stdout.write(
                    "    then a code from an authenticator app: the first login shows a QR "
                    "code (and its key) to add to the app"
                )
        if not logins:
            self.stdout.write(
                f"  Logins: {MANAGER!r} (account manager) and {CLIENT_USER!r} (client user); "
                "new passwords: scripts/run-demo --reset-logins"
            )


def _inbox_base_url(web_bind: str) -> str:
    host, _, port = web_bind.rpartition(":")
    return f"http://{'127.0.0.1' if host in _ANY_ADDRESS else host}:{port}"
