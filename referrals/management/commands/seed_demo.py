from __future__ import annotations

import secrets
from itertools import islice

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from referrals.demo import demo_records
from referrals.models import Campaign, Client
from referrals.roles import account_manager_create, client_user_create
from referrals.services import referrals_ingest

DEMO_SLUG = "acme-demo"


class Command(BaseCommand):
    help = "Create a demo client, two campaigns, 1,000 referrals, a staff and a client login."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--referrals", type=int, default=1000)

    @transaction.atomic
    def handle(self, *args, referrals: int, **options) -> None:
        if Client.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write("Demo data exists already; logins were printed when it was made.")
            return
        client = Client.objects.create(name="Acme Demo", slug=DEMO_SLUG, time_zone="Europe/London")
        campaigns = ["spring-sale", "newsletter-signup"]
        Campaign.objects.create(client=client, external_id=campaigns[0], name="Spring sale")
        Campaign.objects.create(client=client, external_id=campaigns[1], name="Newsletter sign-up")
        _example_delivery(client)  # before the referrals, so its ledger owes them
        records = demo_records(client_slug=DEMO_SLUG, campaigns=campaigns, count=referrals)
        while batch := list(islice(records, 1000)):
            referrals_ingest(records=batch)

        users = get_user_model().objects
        logins = []
        if not users.filter(username="manager").exists():
            password = secrets.token_urlsafe(12)
            account_manager_create(username="manager", password=password)
            logins.append(("account manager", "manager", password))
        if not users.filter(username="acme").exists():
            password = secrets.token_urlsafe(12)
            client_user_create(client=client, username="acme", password=password)
            logins.append(("client user (Acme Demo)", "acme", password))
        self.stdout.write(self.style.SUCCESS(f"Demo client {client.name}: {referrals} referrals."))
        for role, username, password in logins:
            self.stdout.write(f"  {role}: username {username!r}, password {password!r}")


def _example_delivery(client: Client) -> None:
    """A nightly SFTP drop, paused until someone points it at a real server: the demo shows
    what it owes growing in its ledger, and everything an account manager sets up."""
    import datetime as dt

    from django.utils import timezone

    from deliveries.models import Delivery

    Delivery.objects.create(
        client=client, name="Nightly CRM drop (example)", kind="sftp",
        host="sftp.example.com", username="acme", remote_dir="incoming",
        columns=[{"source": "external_id", "output": "Id"}, {"source": "email", "output": "Email"},
                 {"source": "first_name", "output": "First name"},
                 {"source": "last_name", "output": "Last name"},
                 {"source": "opted_in_at", "output": "Opted in"}],
        schedule_kind="daily", schedule_time=dt.time(6, 0), marker="manifest",
        starts_at=timezone.now() - dt.timedelta(days=60),
        paused_at=timezone.now(),
        paused_reason="example: set the server and password, fetch and pin its host key, resume",
    )  # fmt: skip
