"""The demo's data: what a newcomer needs to see every channel work in the first minutes.

One client with two campaigns; 1,000 referrals stored over the last 30 days (so the
dashboard's chart has a month of bars); custom fields of six kinds, used by a real-time
delivery to the demo's webhook inbox and so by the export's "delivery" column set; an SFTP
delivery kept as an inactive template (it alerts nobody); an account manager and a client
user who already has an export to look at.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
from dataclasses import dataclass
from itertools import islice

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from customfields.models import CustomField
from customfields.services import custom_field_save
from deliveries.models import Delivery
from deliveries.services import delivery_save
from exports.services import DELIVERY_COLUMN_SET, ExportRequest, export_start
from referrals.api.serializers import ReferralIngestSerializer
from referrals.demo import demo_records
from referrals.models import Campaign, Client, Referral
from referrals.roles import account_manager_create, client_user_create
from referrals.services import referrals_insert
from referrals.two_factor.services import devices_reset, two_factor_required

DEMO_SLUG = "acme-demo"
INBOX_DELIVERY = "Webhook inbox (demo)"
MANAGER, CLIENT_USER = "manager", "acme"
_CAMPAIGNS = {"spring-sale": "Spring sale", "newsletter-signup": "Newsletter sign-up"}


@dataclass(frozen=True)
class Login:
    role: str
    username: str
    password: str
    two_factor: bool  # a code is asked at login (the first one sets up the app)


def demo_exists() -> bool:
    return Client.objects.filter(slug=DEMO_SLUG).exists()


@transaction.atomic
def demo_seed(*, referrals: int, inbox_base_url: str) -> list[Login]:
    """Create the demo's client, data, deliveries and logins; the logins' passwords are new
    and returned (nothing keeps them)."""
    client = Client.objects.create(name="Acme Demo", slug=DEMO_SLUG, time_zone="Europe/London")
    campaigns = {
        external_id: Campaign.objects.create(client=client, external_id=external_id, name=name)
        for external_id, name in _CAMPAIGNS.items()
    }
    _custom_fields(client)
    _referrals(client, campaigns, count=referrals)
    inbox = _inbox_delivery(client, inbox_base_url)
    _sftp_template(client)
    logins = demo_logins_reset()
    _first_export(client, inbox)
    return logins


@transaction.atomic
def demo_logins_reset() -> list[Login]:
    """New random passwords for the demo's two logins (made again if someone deleted them);
    their two-factor devices are forgotten, so whoever runs the demo sets up their own app at
    the next login (the account manager must: staff always log in with a code)."""
    client = Client.objects.get(slug=DEMO_SLUG)
    users = get_user_model().objects
    logins = []
    for role, username in (("account manager", MANAGER), (f"client user ({client})", CLIENT_USER)):
        password = secrets.token_urlsafe(12)
        user = users.filter(username=username).first()
        if user is None and username == MANAGER:
            user = account_manager_create(username=username, password=password)
        elif user is None:
            user = client_user_create(client=client, username=username, password=password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
            devices_reset(user)
        logins.append(Login(role, username, password, two_factor_required(user)))
    return logins


def demo_inbox_point(inbox_base_url: str) -> str:
    """Point the inbox delivery at the inbox where the web server listens now (a later run
    may serve on another port); returns its URL."""
    delivery = Delivery.objects.get(client__slug=DEMO_SLUG, name=INBOX_DELIVERY)
    delivery.url = f"{inbox_base_url.rstrip('/')}/demo/inbox/{delivery.pk}/"
    delivery_save(delivery)
    return delivery.url


def _custom_fields(client: Client) -> None:
    K = CustomField.Kind
    for field in [
        CustomField(name="gender_label", kind=K.VALUE_MAP, source="gender", rules=[
            {"match": "equals", "value": "M", "output": "Male", "case_sensitive": False},
            {"match": "equals", "value": "F", "output": "Female", "case_sensitive": False},
        ], empty_default="Unknown", no_match_default="Other"),
        CustomField(name="full_name", kind=K.TEMPLATE,
                    template="{{{first_name}}} {{{last_name}}}"),
        CustomField(name="opted_in_local", kind=K.DATETIME, source="opted_in_at",
                    date_pattern="%d/%m/%Y %H:%M"),
        CustomField(name="email_sha256", kind=K.HASH, source="email", algorithm="sha256"),
        CustomField(name="city_upper", kind=K.CASE, source="city", case="upper"),
        CustomField(name="lead_source", kind=K.CONSTANT, constant="Rokt demo"),
    ]:  # fmt: skip
        field.client = client
        custom_field_save(field)


def _referrals(client: Client, campaigns: dict[str, Campaign], *, count: int) -> None:
    """Stored as ingestion would store them (same validation, same ledger), but at the time
    each person opted in, a few seconds later: a month of history rather than one day."""
    validator = ReferralIngestSerializer()
    rng = random.Random(7)
    rows = []
    for record in demo_records(client_slug=client.slug, campaigns=list(campaigns), count=count):
        fields = dict(validator.run_validation(record))
        del fields["client"]
        campaign = campaigns[fields.pop("campaign")]
        stored_at = fields["opted_in_at"] + dt.timedelta(seconds=rng.randint(1, 50))
        rows.append(Referral(client=client, campaign=campaign, created_at=stored_at, **fields))
    rows.sort(key=lambda referral: referral.created_at)
    chunks = iter(rows)
    while chunk := list(islice(chunks, 1000)):
        referrals_insert(chunk)


_INBOX_COLUMNS = [
    ("external_id", "id"), ("full_name", "name"), ("email", "email"),
    ("email_sha256", "email_hash"), ("gender_label", "gender"), ("city_upper", "city"),
    ("opted_in_local", "opted_in"), ("lead_source", "source"),
]  # fmt: skip


def _inbox_delivery(client: Client, inbox_base_url: str) -> Delivery:
    """Real-time, to the demo's own inbox, signed with a secret generated as for any API
    delivery. It starts now: referrals stored from here on are sent (the history is not)."""
    delivery = delivery_save(Delivery(
        client=client, name=INBOX_DELIVERY, kind=Delivery.Kind.API, url="http://127.0.0.1/",
        columns=[{"source": s, "output": o} for s, o in _INBOX_COLUMNS],
    ))  # fmt: skip
    demo_inbox_point(inbox_base_url)  # its URL names its own id
    return delivery


def _sftp_template(client: Client) -> None:
    """A nightly SFTP drop to copy from: inactive, so it owes nothing and alerts nobody until
    someone gives it a real server, its password and pinned host key, and activates it."""
    Delivery.objects.create(
        client=client, name="Nightly SFTP drop (template)", kind="sftp", active=False,
        host="sftp.example.com", username="acme", remote_dir="incoming",
        columns=[{"source": s, "output": o} for s, o in _INBOX_COLUMNS],
        schedule_kind="daily", schedule_time=dt.time(6, 0), marker="manifest",
    )  # fmt: skip


def _first_export(client: Client, inbox: Delivery) -> None:
    """The client user's last week in the inbox delivery's columns, as Export would stream it:
    their home page then lists a real export from the start."""
    today = timezone.now().astimezone(client.zone).date()
    user = get_user_model().objects.get(username=CLIENT_USER)
    request = ExportRequest(
        client=client, start=today - dt.timedelta(days=6), end=today,
        column_set=f"{DELIVERY_COLUMN_SET}{inbox.pk}",
    )  # fmt: skip
    _, chunks = export_start(request, user=user)
    for _ in chunks or ():
        pass
