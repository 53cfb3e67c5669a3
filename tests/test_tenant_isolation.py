"""Tenant isolation: a client user of client A never gets client B's data.

The suite is a set of tables. Each row is one URL, built from the fixture objects, and what
user A (a client user of client A) must get there:

- every response body is searched for the marker strings planted in all of B's data (client
  name, campaign name and external id, referral external ids, emails, names, city, extra, the
  B user's username and email): none may appear, except a marker the URL itself carries (an
  admin search box echoes its term, and that is not a leak);
- ``status`` is the exact status A gets (a B object by id answers 404, a write 403);
- ``a_sees`` names a marker of A's own data that must be on the page, so a list cannot pass by
  showing nothing;
- ``staff`` replays the same URL as the account manager, who sees everything, and names the B
  marker they must see: that proves the URL really reaches B's data, so A's 404 or empty list
  is isolation and not a broken URL.

A delivery's secrets (password, private key, passphrase; a real-time delivery's token and its
signing secrets, current and previous) are write-only: no response to anyone, A's own and the
account manager's included, ever holds one. An attempt's log shows the Authorization header
as ``[redacted]``.

``WRITE_CASES`` holds requests that try to change data; each must be refused and leave the
database exactly as it was.

``test_every_admin_url_has_a_row`` and friends fail when a new admin URL, API endpoint or
autocomplete source appears without a row here: a new feature (custom fields, deliveries,
exports) adds its rows to the tables, and its app to ``TENANT_APPS``.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection, models, transaction
from django.urls import resolve, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from customfields.api import urls as customfield_api_urls
from customfields.models import CustomField
from deliveries import api_runs, delivery_cache
from deliveries.api import urls as delivery_api_urls
from deliveries.api_runs import signing_secrets
from deliveries.channels import delivery_errors
from deliveries.models import (
    Attempt,
    Batch,
    BatchEntry,
    Delivery,
    DeliveryItem,
    WorkerHeartbeat,
)
from privacy.api import urls as privacy_api_urls
from privacy.models import AccessLogEntry, ErasureReceipt, PurgeRun
from referrals.api import urls as api_urls
from referrals.models import Campaign, Client, ClientMembership, ExportAudit, Referral
from referrals.roles import account_manager_create, client_user_create
from tests.conftest import PASSWORD, api_client_for
from tests.factories import make_client, make_referral

User = get_user_model()

# Apps whose admin pages hold client data: every URL of their model admins needs a row.
TENANT_APPS = ("referrals", "customfields", "deliveries", "privacy")
# Further models whose admin pages must be covered: users carry client memberships.
SENSITIVE_MODELS = (User,)


# --- The data: two clients, every value of B a unique marker -----------------------------------


@dataclass(frozen=True)
class Markers:
    """Strings that occur in one tenant's data and nowhere else."""

    client_name: str
    campaign_name: str
    campaign_external_id: str
    referral_external_id: str
    email: str
    first_name: str
    last_name: str
    city: str
    extra_value: str
    username: str
    user_email: str
    custom_field: str
    custom_value: str
    delivery_name: str
    delivery_host: str
    delivery_username: str
    remote_dir: str
    last_error: str
    paused_reason: str
    batch_file: str
    batch_error: str
    # A real-time API delivery, and one logged attempt of it.
    api_delivery_name: str
    api_host: str
    api_header: str
    body_template: str
    item_reason: str
    attempt_url: str
    request_body: str
    response_header: str
    response_body: str
    attempt_reason: str
    error_class: str
    # A delivery's secrets: write-only, so no response to anyone (the account manager and the
    # client's own users included) ever holds them.
    password: str
    private_key: str
    passphrase: str
    auth_secret: str
    signing_secret: str
    previous_signing_secret: str

    @classmethod
    def for_tag(cls, tag: str) -> Markers:
        return cls(
            client_name=f"{tag}client-qz9",
            campaign_name=f"{tag}campaign-qz9",
            campaign_external_id=f"{tag}campext-qz9",
            referral_external_id=f"{tag}refext-qz9",
            email=f"{tag}email-qz9@{tag}mail.example",
            first_name=f"{tag}first-qz9",
            last_name=f"{tag}last-qz9",
            city=f"{tag}city-qz9",
            extra_value=f"{tag}extra-qz9",
            username=f"{tag}user-qz9",
            user_email=f"{tag}useremail-qz9@{tag}staff.example",
            custom_field=f"{tag}_cf_qz9",
            custom_value=f"{tag}cfvalue-qz9",
            delivery_name=f"{tag}delivery-qz9",
            # .invalid never resolves: a connection the manager's pages try fails at once.
            delivery_host=f"{tag}host-qz9.invalid",
            delivery_username=f"{tag}login-qz9",
            remote_dir=f"upload/{tag}dir-qz9",
            last_error=f"{tag}lasterror-qz9",
            paused_reason=f"{tag}pausedwhy-qz9",
            batch_file=f"{tag}batchfile-qz9.csv",
            batch_error=f"{tag}batcherror-qz9",
            api_delivery_name=f"{tag}apidelivery-qz9",
            # .invalid again: a test referral the manager sends fails at once (DNS).
            api_host=f"{tag}crm-qz9.invalid",
            api_header=f"{tag}headervalue-qz9",
            body_template=f"{tag}template-qz9",
            item_reason=f"{tag}itemreason-qz9",
            attempt_url=f"{tag}attempturl-qz9",
            request_body=f"{tag}requestbody-qz9",
            response_header=f"{tag}responseheader-qz9",
            response_body=f"{tag}responsebody-qz9",
            attempt_reason=f"{tag}attemptreason-qz9",
            # Made up (real ones are "dns", "timeout", ...): the list's filter offers the values
            # it finds, which must be A's only.
            error_class=f"{tag}errclass-qz9",
            password=f"{tag}secretpassword-qz9",
            private_key=f"{tag}secretkey-qz9",
            passphrase=f"{tag}secretpassphrase-qz9",
            auth_secret=f"{tag}secretbearer-qz9",
            signing_secret=_whsec(f"{tag}SigningSecretQz9"),
            previous_signing_secret=_whsec(f"{tag}PreviousSecretQz9"),
        )

    def values(self) -> tuple[str, ...]:
        return dataclasses.astuple(self)

    def secrets(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in SECRET_FIELDS)


FILE_SECRET_FIELDS = ("password", "private_key", "passphrase")
API_SECRET_FIELDS = ("auth_secret", "signing_secret", "previous_signing_secret")
SECRET_FIELDS = (*FILE_SECRET_FIELDS, *API_SECRET_FIELDS)


def _whsec(text: str) -> str:
    """A valid Standard Webhooks secret (``whsec_`` + base64 of 32 bytes) that reads ``text``:
    letters and digits are base64 characters, padded with ``A`` (zero bits) to 43 + ``=``."""
    encoded = text.ljust(43, "A") + "="
    assert len(base64.b64decode(encoded, validate=True)) == 32
    return f"whsec_{encoded}"


# Both tenants also hold a "twin" referral with the same external id, email and names, as when
# one person opts in to two advertisers' offers and the collector reuses its id: a search for
# these matches rows of both clients.
TWIN = {"external_id": "twin-0001", "email": "twin@shared.example", "last_name": "Twinsurname"}


@dataclass
class Tenant:
    client: Client
    campaign: Campaign
    referral: Referral
    twin: Referral
    user: Any
    markers: Markers
    custom_field: CustomField
    export_audit: ExportAudit
    delivery: Delivery
    batch: Batch
    api_delivery: Delivery
    attempt: Attempt


@dataclass
class World:
    a: Tenant
    b: Tenant
    manager: Any
    heartbeat: WorkerHeartbeat
    # An erasure of one of B's people (staff only: no client user sees any receipt).
    receipt_b: ErasureReceipt
    # A manager's view of B's referrals in the access log (superusers only).
    access_b: AccessLogEntry
    # What a retention purge removed (totals only): account managers read it.
    purge_run: PurgeRun


def _tenant(client: Client, user, tag: str) -> Tenant:
    m = Markers.for_tag(tag)
    client.name = m.client_name
    client.save(update_fields=["name"])
    user.username, user.email = m.username, m.user_email
    user.save(update_fields=["username", "email"])
    # Made before the referrals, so the ledger owes it each of them.
    delivery = Delivery.objects.create(
        client=client, name=m.delivery_name, kind="sftp", host=m.delivery_host, port=1,
        username=m.delivery_username, password=m.password, private_key=m.private_key,
        passphrase=m.passphrase, remote_dir=m.remote_dir, host_key="SHA256:abc",
        last_error=m.last_error, paused_reason=m.paused_reason, schedule_kind="daily",
        schedule_time=datetime.time(6, 0),
        starts_at=timezone.now() - datetime.timedelta(minutes=1),
    )  # fmt: skip
    api_delivery = Delivery.objects.create(
        client=client, name=m.api_delivery_name, kind="api", url=f"https://{m.api_host}/hook",
        body_template='{"email": "{{{email}}}", "note": "' + m.body_template + '"}',
        headers=[{"name": "X-Partner-Note", "value": m.api_header}], auth_kind="bearer",
        auth_secret=m.auth_secret, signing_secret=m.signing_secret,
        previous_signing_secret=m.previous_signing_secret,
        previous_secret_until=timezone.now() + datetime.timedelta(hours=1),
        connect_timeout=1.0, total_timeout=2.0,
        starts_at=timezone.now() - datetime.timedelta(minutes=1),
    )  # fmt: skip
    campaign = {"campaign": m.campaign_external_id, "campaign_name": m.campaign_name}
    referral = make_referral(
        client,
        **campaign,
        external_id=m.referral_external_id,
        email=m.email,
        first_name=m.first_name,
        last_name=m.last_name,
        city=m.city,
        extra={"note": m.extra_value},
    )
    twin = make_referral(client, **campaign, **TWIN, first_name="Twin")
    custom_field = CustomField.objects.create(
        client=client, name=m.custom_field, kind="constant", constant=m.custom_value
    )
    audit = ExportAudit.objects.create(user=user, client=client, format="csv",
                                       filters={"search": m.extra_value})  # fmt: skip
    batch = Batch.objects.create(
        delivery=delivery, number=1, run_at=timezone.now(), status="failed", rows=2,
        files=[{"name": m.batch_file, "rows": 2, "bytes": 300, "sha256": "0" * 64}],
        error=m.batch_error, attempts=1,
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1),
    )  # fmt: skip
    # The ledger owes the API delivery both referrals: the first was tried once, and refused.
    item = DeliveryItem.objects.get(delivery=api_delivery, referral=referral)
    DeliveryItem.objects.filter(pk=item.pk).update(
        status="rejected", attempts=1, reason=m.item_reason)  # fmt: skip
    attempt = Attempt.objects.create(
        delivery=api_delivery, item=item, referral_id=referral.pk, number=1, method="POST",
        url=f"https://{m.api_host}/hook?trace={m.attempt_url}",
        # As api_runs logs it: the bearer token redacted, the signature (no secret) kept.
        request_headers=[
            ["X-Partner-Note", m.api_header], ["Content-Type", "application/json"],
            ["Authorization", "[redacted]"], ["webhook-id", f"msg_{item.pk}"],
            ["webhook-timestamp", "1700000000"], ["webhook-signature", "v1,c2lnbmF0dXJl"],
        ],
        request_body=json.dumps({"email": m.email, "note": m.request_body}),
        status_code=422, response_headers=[["X-Receiver-Trace", m.response_header]],
        response_body=json.dumps({"error": m.response_body}), latency_ms=12.5,
        error_class=m.error_class, outcome="rejected", reason=f"HTTP 422: {m.attempt_reason}",
    )  # fmt: skip
    return Tenant(client, referral.campaign, referral, twin, user, m, custom_field, audit,
                  delivery, batch, api_delivery, attempt)  # fmt: skip


@pytest.fixture(scope="module")
def _world_once(django_db_setup, django_db_blocker) -> Iterator[World]:
    """The two tenants, made once for the module's ~580 tests (making them was most of their
    time), in a transaction rolled back after the last: each test runs in a savepoint of it,
    as with Django's ``setUpTestData``."""
    with django_db_blocker.unblock(), transaction.atomic():
        # As tests/conftest.py's client_a, client_b, user_a and manager make them.
        client_a = make_client("alpha", name="Alpha Corp", time_zone="Europe/London")
        client_b = make_client("bravo", name="Bravo Corp", time_zone="America/New_York")
        user_a = client_user_create(client=client_a, username="alice", password=PASSWORD)
        manager = account_manager_create(username="manager", password=PASSWORD)
        user_b = client_user_create(client=client_b, username="b-user", password=PASSWORD)
        heartbeat = WorkerHeartbeat.objects.create(hostname="worker-qz9", beat_at=timezone.now())
        receipt_b = ErasureReceipt.objects.create(
            identifier_kind="external_id", identifier_hash="f" * 64, client=client_b,
            requested_by=manager, source="api", referrals=1,
        )  # fmt: skip
        access_b = AccessLogEntry.objects.create(
            user=manager, username="manager", role="staff", kind="api",
            operation="v1_referrals_list", path="/api/v1/referrals/",
            client_ids=f" {client_b.pk} ", client_names=client_b.name, rows=1, status=200,
        )  # fmt: skip
        purge_run = PurgeRun.objects.create(started_at=timezone.now())
        yield World(
            a=_tenant(client_a, user_a, "alpha"),
            b=_tenant(client_b, user_b, "bravo"),
            manager=manager,
            heartbeat=heartbeat,
            receipt_b=receipt_b,
            access_b=access_b,
            purge_run=purge_run,
        )
        transaction.set_rollback(True)


@pytest.fixture
def world(_world_once, db) -> World:
    """A test's own copy of the objects (its changes to the rows are undone with its
    savepoint), and no process cache holding a row a test before it changed: the rows keep
    their ids from test to test."""
    delivery_cache._cache.clear()
    api_runs._compile_cache.clear()
    cache.clear()
    return copy.deepcopy(_world_once)


# --- The table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Staff:
    """What the account manager gets on the same URL."""

    status: int = 200
    sees: str | None = None  # a field of B's Markers that must be in the response


@dataclass(frozen=True)
class Case:
    name: str
    url: Callable[[World], str]
    status: int = 200
    a_sees: str | None = None  # a field of A's Markers that must be in A's response
    staff: Staff | None = None
    follow: bool = False

    def __str__(self) -> str:
        return self.name


def ref(path: str) -> Callable[[World], Any]:
    """A value of the fixture world by dotted path, for a URL built when the test runs:
    ``ref("b.client.pk")``, ``ref("b.markers.email")``."""

    def get(w: World) -> Any:
        value: Any = w
        for part in path.split("."):
            value = getattr(value, part)
        return value

    return get


def days_from_today(n: int) -> Callable[[World], str]:
    return lambda w: (timezone.now() + datetime.timedelta(days=n)).date().isoformat()


def moment_in_days(n: int) -> Callable[[World], str]:
    return lambda w: (timezone.now() + datetime.timedelta(days=n)).isoformat()


def _url(w: World, path: str, params: dict[str, Any]) -> str:
    if not params:
        return path
    values = {key: value(w) if callable(value) else value for key, value in params.items()}
    return f"{path}?{urlencode(values)}"


def admin_page(view: str, model: str, of: str | None = None, **params: Any):
    """``admin:referrals_<model>_<view>``, of the object at ``of`` (``"b.campaign"``) or of
    none (changelist, add); ``view="object"`` is the bare ``<id>/`` URL, which redirects.
    Query parameters may be ``ref``s."""

    def build(w: World) -> str:
        args = [] if of is None else [ref(f"{of}.pk")(w)]
        name = "change" if view == "object" else view
        path = reverse(f"admin:referrals_{model}_{name}", args=args)
        return _url(w, path.removesuffix("change/") if view == "object" else path, params)

    return build


def cf_page(view: str, of: str | None = None, **params: Any):
    """``admin:customfields_customfield_<view>``, of the custom field of ``of`` or of none."""

    def build(w: World) -> str:
        args = [] if of is None else [ref(f"{of}.custom_field.pk")(w)]
        return _url(w, reverse(f"admin:customfields_customfield_{view}", args=args), params)

    return build


def user_page(view: str, of: str | None = None):
    """``admin:auth_user_<view>``, of the user of tenant ``of`` (``"a"``/``"b"``) or of none."""

    def build(w: World) -> str:
        args = [] if of is None else [ref(f"{of}.user.pk")(w)]
        return reverse(f"admin:auth_user_{view}", args=args)

    return build


def admin_named(name: str, *args: str):
    return lambda w: reverse(f"admin:{name}", args=args)


def autocomplete(app_label: str, model_name: str, field_name: str, term: Any = ""):
    """Django's AutocompleteJsonView reads the *source* model and its foreign key; it answers
    with the rows of the target model's admin."""
    params = {"app_label": app_label, "model_name": model_name, "field_name": field_name}
    return lambda w: _url(w, reverse("admin:autocomplete"), {**params, "term": term})


def view_on_site(of: str):
    def build(w: World) -> str:
        obj = ref(of)(w)
        content_type = ContentType.objects.get_for_model(obj)
        return reverse("admin:view_on_site", args=[content_type.pk, obj.pk])

    return build


def delivery_page(
    view: str, model: str = "delivery", of: str | None = None, obj: str | None = None,
    **params: Any,
):  # fmt: skip
    """``admin:deliveries_<model>_<view>``, of the delivery (``model="delivery"``), batch
    (``"batch"``) or attempt (``"attempt"``) of tenant ``of`` (``"a"``/``"b"``) or of none;
    ``obj`` names another object of the tenant (``"api_delivery"``). ``view="object"`` is the
    bare ``<id>/`` URL, which redirects."""

    def build(w: World) -> str:
        args = [] if of is None else [ref(f"{of}.{obj or model}.pk")(w)]
        name = "change" if view == "object" else view
        path = reverse(f"admin:deliveries_{model}_{name}", args=args)
        return _url(w, path.removesuffix("change/") if view == "object" else path, params)

    return build


def _delivery_pk(w: World, of: str) -> Any:
    """The file delivery of tenant ``"a"``/``"b"``, another delivery by path
    (``"b.api_delivery"``), or a raw id (``TOO_BIG``)."""
    if of in ("a", "b"):
        return ref(f"{of}.delivery.pk")(w)
    return ref(f"{of}.pk")(w) if "." in of else of


def delivery_action(name: str, of: str):
    """A button of the delivery page (``admin:deliveries_<name>``), of the delivery ``of``
    names (see ``_delivery_pk``)."""
    return lambda w: reverse(f"admin:deliveries_{name}", args=[_delivery_pk(w, of)])


def heartbeat_page(view: str, with_object: bool = False):
    """``admin:deliveries_workerheartbeat_<view>``: worker health, no client data."""
    return lambda w: reverse(
        f"admin:deliveries_workerheartbeat_{view}", args=[w.heartbeat.pk] if with_object else []
    )


def receipt_page(view: str, with_object: bool = False):
    """``admin:privacy_erasurereceipt_<view>``: erasure receipts, account managers' only."""
    return lambda w: reverse(
        f"admin:privacy_erasurereceipt_{view}", args=[w.receipt_b.pk] if with_object else []
    )


def access_log_page(view: str, with_object: bool = False):
    """``admin:privacy_accesslogentry_<view>``: the referral access log, superusers' only."""
    return lambda w: reverse(
        f"admin:privacy_accesslogentry_{view}", args=[w.access_b.pk] if with_object else []
    )


def purge_run_page(view: str, with_object: bool = False):
    """``admin:privacy_purgerun_<view>``: the retention purge's runs, account managers'."""
    return lambda w: reverse(
        f"admin:privacy_purgerun_{view}", args=[w.purge_run.pk] if with_object else []
    )


API_ROOT = "/api/v1/"
ERASURE_API = "/api/v1/erasures/"
API = "/api/v1/referrals/"
CF_API = "/api/v1/custom-fields/"
DL_API = "/api/v1/deliveries/"


def api_list(**params: Any):
    return lambda w: _url(w, API, params)


def api_detail(of: str, suffix: str = "/"):
    return lambda w: f"{API}{ref(of)(w).pk}{suffix}"


def delivery_api(of: str | None = None, suffix: str = "", **params: Any):
    """``/api/v1/deliveries/``, or the delivery ``of`` names (see ``_delivery_pk``) and a
    ``suffix`` (``run/``)."""

    def build(w: World) -> str:
        path = DL_API if of is None else f"{DL_API}{_delivery_pk(w, of)}/{suffix}"
        return _url(w, path, params)

    return build


OK, NOT_FOUND, FORBIDDEN = 200, 404, 403
SUPERSCRIPT_TWO = "\u00b2"  # str.isdigit() says yes, int() says no
TOO_BIG = "9" * 30  # beyond any primary key
STORED_AROUND_TODAY = {
    "created_at__range__gte": days_from_today(-1),
    "created_at__range__lte": days_from_today(1),
}
OPTED_IN_AROUND_TODAY = {
    "opted_in_at__range__gte": days_from_today(-1),
    "opted_in_at__range__lte": days_from_today(1),
}

# fmt: off
ADMIN_CASES = [
    # Index pages list models, never clients.
    Case("index", admin_named("index")),
    Case("app-index", admin_named("app_list", "referrals")),
    # Changelists: A's rows only; the manager sees B's.
    Case("client-list", admin_page("changelist", "client"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("campaign-list", admin_page("changelist", "campaign"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("referral-list", admin_page("changelist", "referral"),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("client-list-facets", admin_page("changelist", "client", _facets="True"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("campaign-list-facets", admin_page("changelist", "campaign", _facets="True"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("referral-list-facets", admin_page("changelist", "referral", _facets="True"),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    # Changelist filters pointed at B: the sidebar filters, and raw field lookups in the query.
    Case("campaign-list-filter-client-b",
         admin_page("changelist", "campaign", client=ref("b.client.pk")),
         staff=Staff(sees="campaign_external_id")),
    Case("campaign-list-lookup-client-b",
         admin_page("changelist", "campaign", client__id__exact=ref("b.client.pk")),
         staff=Staff(sees="campaign_external_id")),
    Case("referral-list-filter-client-b",
         admin_page("changelist", "referral", client=ref("b.client.pk")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-filter-campaign-b",
         admin_page("changelist", "referral", campaign=ref("b.campaign.pk")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-filter-client-and-campaign-b",
         admin_page("changelist", "referral", client=ref("b.client.pk"),
                    campaign=ref("b.campaign.pk")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-lookup-client-b",
         admin_page("changelist", "referral", client__exact=ref("b.client.pk")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-lookup-campaign-b",
         admin_page("changelist", "referral", campaign__id__exact=ref("b.campaign.pk")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-lookup-email-b",
         admin_page("changelist", "referral", email=ref("b.markers.email")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-list-created-range", admin_page("changelist", "referral", **STORED_AROUND_TODAY),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("referral-list-opted-in-range",
         admin_page("changelist", "referral", **OPTED_IN_AROUND_TODAY),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("referral-list-client-b-range-facets",
         admin_page("changelist", "referral", client=ref("b.client.pk"), _facets="True",
                    **STORED_AROUND_TODAY),
         staff=Staff(sees="referral_external_id")),
    # Malformed filter values: a list, never an error page.
    Case("referral-list-filter-campaign-superscript",
         admin_page("changelist", "referral", campaign=SUPERSCRIPT_TWO), staff=Staff()),
    Case("referral-list-filter-client-superscript",
         admin_page("changelist", "referral", client=SUPERSCRIPT_TWO), staff=Staff()),
    Case("campaign-list-filter-client-superscript",
         admin_page("changelist", "campaign", client=SUPERSCRIPT_TWO), staff=Staff()),
    Case("referral-list-filter-campaign-too-big",
         admin_page("changelist", "referral", campaign=TOO_BIG), staff=Staff()),
    Case("referral-list-filter-client-too-big",
         admin_page("changelist", "referral", client=TOO_BIG), staff=Staff()),
    # Admin search for B's values ("client-qz9", "campaign-qz9" match both tenants).
    Case("client-search-shared-term", admin_page("changelist", "client", q="client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("client-search-b-slug", admin_page("changelist", "client", q=ref("b.client.slug")),
         staff=Staff(sees="client_name")),
    Case("campaign-search-shared-term", admin_page("changelist", "campaign", q="campaign-qz9"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("campaign-search-b-external-id",
         admin_page("changelist", "campaign", q=ref("b.markers.campaign_external_id")),
         staff=Staff(sees="campaign_name")),
    Case("referral-search-b-email",
         admin_page("changelist", "referral", q=ref("b.markers.email")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-search-b-external-id",
         admin_page("changelist", "referral", q=ref("b.markers.referral_external_id")),
         staff=Staff(sees="email")),
    Case("referral-search-b-last-name",
         admin_page("changelist", "referral", q=ref("b.markers.last_name")),
         staff=Staff(sees="referral_external_id")),
    Case("referral-search-b-first-name",
         admin_page("changelist", "referral", q=ref("b.markers.first_name")),
         staff=Staff(sees="referral_external_id")),
    # Values both clients hold: A finds its own row, never B's.
    Case("referral-search-shared-external-id",
         admin_page("changelist", "referral", q=TWIN["external_id"]),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("referral-search-shared-email", admin_page("changelist", "referral", q=TWIN["email"]),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("referral-search-shared-last-name",
         admin_page("changelist", "referral", q=TWIN["last_name"].upper()),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    # B's objects by id: 404, exactly as an id that does not exist.
    Case("client-change-of-b", admin_page("change", "client", "b.client"), NOT_FOUND,
         staff=Staff(sees="client_name")),
    Case("client-change-of-b-popup",
         admin_page("change", "client", "b.client", _popup=1, _to_field="id"), NOT_FOUND,
         staff=Staff(sees="client_name")),
    Case("client-history-of-b", admin_page("history", "client", "b.client"), NOT_FOUND,
         staff=Staff(sees="client_name")),
    Case("client-delete-of-b", admin_page("delete", "client", "b.client"), NOT_FOUND,
         staff=Staff(sees="client_name")),
    Case("client-bare-id-of-b", admin_page("object", "client", "b.client"), NOT_FOUND,
         staff=Staff(sees="client_name"), follow=True),
    Case("campaign-change-of-b", admin_page("change", "campaign", "b.campaign"), NOT_FOUND,
         staff=Staff(sees="campaign_name")),
    Case("campaign-history-of-b", admin_page("history", "campaign", "b.campaign"), NOT_FOUND,
         staff=Staff(sees="campaign_name")),
    Case("campaign-delete-of-b", admin_page("delete", "campaign", "b.campaign"), NOT_FOUND,
         staff=Staff(sees="campaign_name")),
    Case("campaign-bare-id-of-b", admin_page("object", "campaign", "b.campaign"), NOT_FOUND,
         staff=Staff(sees="campaign_name"), follow=True),
    Case("referral-change-of-b", admin_page("change", "referral", "b.referral"), NOT_FOUND,
         staff=Staff(sees="email")),
    Case("referral-change-of-b-twin", admin_page("change", "referral", "b.twin"), NOT_FOUND,
         staff=Staff(sees="campaign_name")),
    Case("referral-history-of-b", admin_page("history", "referral", "b.referral"), NOT_FOUND,
         staff=Staff(sees="referral_external_id")),
    Case("referral-delete-of-b", admin_page("delete", "referral", "b.referral"), NOT_FOUND,
         staff=Staff(status=FORBIDDEN)),
    Case("referral-bare-id-of-b", admin_page("object", "referral", "b.referral"), NOT_FOUND,
         staff=Staff(sees="email"), follow=True),
    Case("view-on-site-of-b", view_on_site("b.referral"), NOT_FOUND),
    # A's own objects: readable, not deletable.
    Case("client-change-own", admin_page("change", "client", "a.client"),
         a_sees="campaign_name"),
    Case("client-history-own", admin_page("history", "client", "a.client"),
         a_sees="client_name"),
    Case("client-delete-own", admin_page("delete", "client", "a.client"), FORBIDDEN),
    Case("campaign-change-own", admin_page("change", "campaign", "a.campaign"),
         a_sees="client_name"),
    Case("campaign-history-own", admin_page("history", "campaign", "a.campaign"),
         a_sees="campaign_name"),
    Case("campaign-delete-own", admin_page("delete", "campaign", "a.campaign"), FORBIDDEN),
    Case("referral-change-own", admin_page("change", "referral", "a.referral"),
         a_sees="extra_value"),
    Case("referral-history-own", admin_page("history", "referral", "a.referral"),
         a_sees="referral_external_id"),
    Case("referral-delete-own", admin_page("delete", "referral", "a.referral"), FORBIDDEN),
    # Add pages: client users add nothing (and nobody adds referrals in the admin).
    Case("client-add", admin_page("add", "client"), FORBIDDEN, staff=Staff()),
    Case("campaign-add", admin_page("add", "campaign"), FORBIDDEN, staff=Staff()),
    Case("referral-add", admin_page("add", "referral"), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    # Autocomplete: the target admin's rows, scoped.
    Case("autocomplete-campaign.client", autocomplete("referrals", "campaign", "client"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-campaign.client-shared-term",
         autocomplete("referrals", "campaign", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-campaign.client-b-slug",
         autocomplete("referrals", "campaign", "client", ref("b.client.slug")),
         staff=Staff(sees="client_name")),
    Case("autocomplete-clientmembership.client",
         autocomplete("referrals", "clientmembership", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-referral.client", autocomplete("referrals", "referral", "client"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-referral.campaign",
         autocomplete("referrals", "referral", "campaign", "campaign-qz9"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("autocomplete-referral.campaign-b-external-id",
         autocomplete("referrals", "referral", "campaign", ref("b.markers.campaign_external_id")),
         staff=Staff(sees="campaign_name")),
    Case("autocomplete-exportaudit.client",
         autocomplete("referrals", "exportaudit", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-exportaudit.user",
         autocomplete("referrals", "exportaudit", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("autocomplete-exportdownload.user",
         autocomplete("referrals", "exportdownload", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    # Export: the form offers A's campaigns only; the audit is for account managers.
    Case("referral-export-form", admin_page("export", "referral"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    # import-export's Export button carries the list's filters to the form as its start.
    Case("referral-export-form-b-filters",
         admin_page("export", "referral", client=ref("b.client.pk"),
                    campaign=ref("b.campaign.pk")),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("export-status-of-b", admin_page("export_status", "referral", "b.export_audit"),
         NOT_FOUND, staff=Staff(sees="client_name")),
    Case("export-download-of-b", admin_page("export_download", "referral", "b.export_audit"),
         NOT_FOUND, staff=Staff(status=NOT_FOUND)),
    Case("exportaudit-list", admin_page("changelist", "exportaudit"), FORBIDDEN,
         staff=Staff(sees="extra_value")),
    Case("exportaudit-change-of-b", admin_page("change", "exportaudit", "b.export_audit"),
         NOT_FOUND, staff=Staff(sees="extra_value")),
    Case("exportaudit-history-of-b", admin_page("history", "exportaudit", "b.export_audit"),
         NOT_FOUND, staff=Staff()),
    Case("exportaudit-delete-of-b", admin_page("delete", "exportaudit", "b.export_audit"),
         NOT_FOUND, staff=Staff(status=FORBIDDEN)),
    Case("exportaudit-add", admin_page("add", "exportaudit"), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    # Erasure receipts: account managers read them; client users get nothing of them.
    Case("erasurereceipt-list", receipt_page("changelist"), FORBIDDEN,
         staff=Staff(sees="client_name")),
    Case("erasurereceipt-change-of-b", receipt_page("change", True), FORBIDDEN,
         staff=Staff(sees="client_name")),
    Case("erasurereceipt-history-of-b", receipt_page("history", True), FORBIDDEN,
         staff=Staff()),
    Case("erasurereceipt-delete-of-b", receipt_page("delete", True), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    Case("erasurereceipt-add", receipt_page("add"), FORBIDDEN, staff=Staff(status=FORBIDDEN)),
    # The referral access log watches account managers too: superusers only.
    *(Case(f"accesslogentry-{view}", access_log_page(view, obj), FORBIDDEN,
           staff=Staff(status=FORBIDDEN))
      for view, obj in (("changelist", False), ("add", False), ("change", True),
                        ("history", True), ("delete", True))),
    # The purge's runs: totals, no client's data; account managers read them, nobody edits.
    Case("purgerun-changelist", purge_run_page("changelist"), FORBIDDEN, staff=Staff()),
    Case("purgerun-change", purge_run_page("change", True), FORBIDDEN, staff=Staff()),
    Case("purgerun-history", purge_run_page("history", True), FORBIDDEN, staff=Staff()),
    Case("purgerun-add", purge_run_page("add"), FORBIDDEN, staff=Staff(status=FORBIDDEN)),
    Case("purgerun-delete", purge_run_page("delete", True), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    Case("autocomplete-erasurereceipt.client",
         autocomplete("privacy", "erasurereceipt", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-erasurereceipt.requested_by",
         autocomplete("privacy", "erasurereceipt", "requested_by", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("autocomplete-customfield.client",
         autocomplete("customfields", "customfield", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-clientmembership.user",
         autocomplete("referrals", "clientmembership", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("autocomplete-token.user", autocomplete("authtoken", "token", "user", "user-qz9"),
         FORBIDDEN, staff=Staff(sees="username")),
    Case("autocomplete-tokenproxy.user",
         autocomplete("authtoken", "tokenproxy", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("autocomplete-logentry.user", autocomplete("admin", "logentry", "user", "user-qz9"),
         FORBIDDEN, staff=Staff(sees="username")),
    # Two-factor devices (django-otp): their admin is a superuser's, the users' search is not.
    Case("autocomplete-totpdevice.user",
         autocomplete("otp_totp", "totpdevice", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    # The access log (privacy): a superuser's; the users' search is what it is everywhere.
    Case("autocomplete-accesslogentry.user",
         autocomplete("privacy", "accesslogentry", "user", "user-qz9"), FORBIDDEN,
         staff=Staff(sees="username")),
    # Users and their client memberships (an inline of the user page): client users have no
    # auth permissions, so every user page is 403, their own included.
    Case("user-list", user_page("changelist"), FORBIDDEN, staff=Staff(sees="username")),
    Case("user-add", user_page("add"), FORBIDDEN, staff=Staff()),
    Case("user-change-of-b", user_page("change", "b"), FORBIDDEN,
         staff=Staff(sees="user_email")),
    Case("user-history-of-b", user_page("history", "b"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("user-delete-of-b", user_page("delete", "b"), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    Case("user-password-of-b", user_page("password_change", "b"), FORBIDDEN,
         staff=Staff(sees="username")),
    Case("user-change-own", user_page("change", "a"), FORBIDDEN),
    Case("group-list", admin_named("auth_group_changelist"), FORBIDDEN),
    # Custom fields: A's read-only, B's absent.
    Case("customfield-list", cf_page("changelist"),
         a_sees="custom_field", staff=Staff(sees="custom_field")),
    Case("customfield-list-facets", cf_page("changelist", _facets="True"),
         a_sees="custom_field", staff=Staff(sees="custom_field")),
    Case("customfield-list-filter-client-b", cf_page("changelist", client=ref("b.client.pk")),
         staff=Staff(sees="custom_field")),
    Case("customfield-search-b", cf_page("changelist", q=ref("b.markers.custom_field")),
         staff=Staff(sees="custom_field")),
    Case("customfield-change-own", cf_page("change", "a"), a_sees="custom_value"),
    Case("customfield-change-of-b", cf_page("change", "b"), NOT_FOUND,
         staff=Staff(sees="custom_value")),
    Case("customfield-history-of-b", cf_page("history", "b"), NOT_FOUND,
         staff=Staff(sees="custom_field")),
    Case("customfield-delete-of-b", cf_page("delete", "b"), NOT_FOUND,
         staff=Staff(sees="custom_field")),
    Case("customfield-add", cf_page("add"), FORBIDDEN, staff=Staff()),
    Case("customfield-preview-get", cf_page("preview"), 405, staff=Staff(status=405)),
    Case("token-list", admin_named("authtoken_tokenproxy_changelist"), FORBIDDEN),
    # Deliveries: A's read-only, B's absent. The changelist shows a delivery's name (its
    # client's name is also in the manager's client filter, so it proves nothing there).
    Case("app-index-deliveries", admin_named("app_list", "deliveries")),
    Case("delivery-list", delivery_page("changelist"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    Case("delivery-list-facets", delivery_page("changelist", _facets="True"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    Case("delivery-list-filter-client-b", delivery_page("changelist", client=ref("b.client.pk")),
         staff=Staff(sees="delivery_name")),
    Case("delivery-list-filter-client-b-facets",
         delivery_page("changelist", client=ref("b.client.pk"), kind="sftp", _facets="True"),
         staff=Staff(sees="delivery_name")),
    Case("delivery-list-filter-client-superscript",
         delivery_page("changelist", client=SUPERSCRIPT_TWO), staff=Staff()),
    Case("delivery-search-shared-term", delivery_page("changelist", q="delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    Case("delivery-search-b-host", delivery_page("changelist", q=ref("b.markers.delivery_host")),
         staff=Staff(sees="delivery_name")),
    Case("delivery-search-b-client-name",
         delivery_page("changelist", q=ref("b.markers.client_name")),
         staff=Staff(sees="delivery_name")),
    # (The search box echoes B's name, and B's client name is in the manager's filter: the
    # manager's side only checks the page works; batch-search-b-delivery-name proves the term.)
    Case("delivery-search-b-name", delivery_page("changelist", q=ref("b.markers.delivery_name")),
         staff=Staff()),
    Case("delivery-change-own", delivery_page("change", of="a"), a_sees="remote_dir"),
    Case("delivery-change-own-batches", delivery_page("change", of="a"), a_sees="batch_file"),
    Case("delivery-history-own", delivery_page("history", of="a"), a_sees="delivery_name"),
    Case("delivery-delete-own", delivery_page("delete", of="a"), FORBIDDEN),
    Case("delivery-change-of-b", delivery_page("change", of="b"), NOT_FOUND,
         staff=Staff(sees="remote_dir")),
    Case("delivery-change-of-b-batches", delivery_page("change", of="b"), NOT_FOUND,
         staff=Staff(sees="batch_error")),
    Case("delivery-history-of-b", delivery_page("history", of="b"), NOT_FOUND,
         staff=Staff(sees="delivery_name")),
    Case("delivery-delete-of-b", delivery_page("delete", of="b"), NOT_FOUND,
         staff=Staff(sees="delivery_name")),
    Case("delivery-bare-id-of-b", delivery_page("object", of="b"), NOT_FOUND,
         staff=Staff(sees="remote_dir"), follow=True),
    Case("delivery-add", delivery_page("add"), FORBIDDEN, staff=Staff()),
    # The delivery page's buttons. Those that act are POST-only: a GET is refused before the
    # delivery is looked up, the same for every id (their POSTs are in WRITE_CASES).
    Case("delivery-send-now-get-of-b", delivery_action("send_now", "b"), 405,
         staff=Staff(status=405)),
    Case("delivery-test-get-of-b", delivery_action("test", "b"), 405,
         staff=Staff(status=405)),
    Case("delivery-pin-key-get-of-b", delivery_action("pin_key", "b"), 405,
         staff=Staff(status=405)),
    Case("delivery-pause-get-of-b", delivery_action("pause", "b"), 405,
         staff=Staff(status=405)),
    Case("delivery-resume-get-of-b", delivery_action("resume", "b"), 405,
         staff=Staff(status=405)),
    # Fetching the key connects out, so it is a POST (in WRITE_CASES); the redeliver form
    # shows the delivery.
    Case("delivery-fetch-key-get-of-b", delivery_action("fetch_key", "b"), 405,
         staff=Staff(status=405)),
    Case("delivery-redeliver-of-b", delivery_action("redeliver", "b"), NOT_FOUND,
         staff=Staff(sees="delivery_name")),
    Case("delivery-redeliver-own", delivery_action("redeliver", "a"), FORBIDDEN),
    # Real-time API deliveries: A reads where its referrals go and its recent attempts; the
    # manager also sees the headers (no secret either way).
    Case("delivery-list-kind-api", delivery_page("changelist", kind="api"),
         a_sees="api_delivery_name", staff=Staff(sees="api_delivery_name")),
    Case("delivery-list-filter-client-b-kind-api",
         delivery_page("changelist", client=ref("b.client.pk"), kind="api", _facets="True"),
         staff=Staff(sees="api_delivery_name")),
    Case("delivery-change-own-api", delivery_page("change", of="a", obj="api_delivery"),
         a_sees="api_host"),
    Case("delivery-change-own-api-template", delivery_page("change", of="a", obj="api_delivery"),
         a_sees="body_template"),
    Case("delivery-change-own-api-attempts", delivery_page("change", of="a", obj="api_delivery"),
         a_sees="attempt_reason"),
    Case("delivery-change-of-b-api", delivery_page("change", of="b", obj="api_delivery"),
         NOT_FOUND, staff=Staff(sees="api_header")),
    Case("delivery-change-of-b-api-attempts",
         delivery_page("change", of="b", obj="api_delivery"), NOT_FOUND,
         staff=Staff(sees="attempt_reason")),
    Case("delivery-history-of-b-api", delivery_page("history", of="b", obj="api_delivery"),
         NOT_FOUND, staff=Staff(sees="api_delivery_name")),
    Case("delivery-delete-of-b-api", delivery_page("delete", of="b", obj="api_delivery"),
         NOT_FOUND, staff=Staff(sees="api_delivery_name")),
    Case("delivery-bare-id-of-b-api", delivery_page("object", of="b", obj="api_delivery"),
         NOT_FOUND, staff=Staff(sees="api_host"), follow=True),
    Case("delivery-redeliver-of-b-api", delivery_action("redeliver", "b.api_delivery"),
         NOT_FOUND, staff=Staff(sees="api_delivery_name")),
    Case("delivery-redeliver-own-api", delivery_action("redeliver", "a.api_delivery"),
         FORBIDDEN),
    # Its buttons are POST-only (in WRITE_CASES): a GET is refused before any lookup.
    Case("delivery-test-get-of-b-api", delivery_action("test", "b.api_delivery"), 405,
         staff=Staff(status=405)),
    Case("delivery-replay-failed-get-of-b", delivery_action("replay_failed", "b.api_delivery"),
         405, staff=Staff(status=405)),
    Case("delivery-replay-referral-get-of-b",
         delivery_action("replay_referral", "b.api_delivery"), 405, staff=Staff(status=405)),
    Case("delivery-rotate-secret-get-of-b", delivery_action("rotate_secret", "b.api_delivery"),
         405, staff=Staff(status=405)),
    Case("delivery-rotate-secret-get-own", delivery_action("rotate_secret", "a.api_delivery"),
         405),
    # Batches: the log of what was sent, A's only.
    Case("batch-list", delivery_page("changelist", "batch"),
         a_sees="batch_file", staff=Staff(sees="batch_file")),
    Case("batch-list-facets", delivery_page("changelist", "batch", _facets="True"),
         a_sees="batch_error", staff=Staff(sees="batch_error")),
    # A client user is offered no client filter on batches: Django refuses the lookup (400),
    # whatever the client (their own too).
    Case("batch-list-filter-client-b",
         delivery_page("changelist", "batch", delivery__client__id__exact=ref("b.client.pk")),
         400, staff=Staff(sees="batch_file")),
    Case("batch-list-lookup-delivery-b",
         delivery_page("changelist", "batch", delivery__id__exact=ref("b.delivery.pk")),
         staff=Staff(sees="batch_file")),
    Case("batch-search-b-delivery-name",
         delivery_page("changelist", "batch", q=ref("b.markers.delivery_name")),
         staff=Staff(sees="batch_file")),
    Case("batch-search-shared-term", delivery_page("changelist", "batch", q="delivery-qz9"),
         a_sees="batch_file", staff=Staff(sees="batch_file")),
    Case("batch-change-own", delivery_page("change", "batch", "a"), a_sees="batch_error"),
    Case("batch-change-of-b", delivery_page("change", "batch", "b"), NOT_FOUND,
         staff=Staff(sees="batch_file")),
    Case("batch-history-of-b", delivery_page("history", "batch", "b"), NOT_FOUND,
         staff=Staff(sees="delivery_name")),
    Case("batch-delete-of-b", delivery_page("delete", "batch", "b"), NOT_FOUND,
         staff=Staff(status=FORBIDDEN)),
    Case("batch-bare-id-of-b", delivery_page("object", "batch", "b"), NOT_FOUND,
         staff=Staff(sees="batch_file"), follow=True),
    Case("batch-add", delivery_page("add", "batch"), FORBIDDEN, staff=Staff(status=FORBIDDEN)),
    # Autocomplete of and into deliveries (batches and ledger rows point at them).
    Case("autocomplete-delivery.client",
         autocomplete("deliveries", "delivery", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    Case("autocomplete-delivery.campaigns",
         autocomplete("deliveries", "delivery", "campaigns", "campaign-qz9"),
         a_sees="campaign_external_id", staff=Staff(sees="campaign_external_id")),
    Case("autocomplete-deliveryitem.referral",
         autocomplete("deliveries", "deliveryitem", "referral", ref("b.markers.email")),
         staff=Staff(sees="referral_external_id")),
    Case("autocomplete-batch.delivery",
         autocomplete("deliveries", "batch", "delivery", "delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    Case("autocomplete-batch.delivery-b-host",
         autocomplete("deliveries", "batch", "delivery", ref("b.markers.delivery_host")),
         staff=Staff(sees="delivery_name")),
    Case("autocomplete-deliveryitem.delivery",
         autocomplete("deliveries", "deliveryitem", "delivery", "delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    # The retention purge's daily figures point at their delivery (no admin page of their own).
    Case("autocomplete-deliveryday.delivery",
         autocomplete("deliveries", "deliveryday", "delivery", "delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    # Deleted referrals' daily counts point at their client (no admin page of their own).
    Case("autocomplete-referralday.client",
         autocomplete("referrals", "referralday", "client", "client-qz9"),
         a_sees="client_name", staff=Staff(sees="client_name")),
    # A frozen batch's entries point at the batch and its referrals.
    Case("autocomplete-batchentry.batch",
         autocomplete("deliveries", "batchentry", "batch", "delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    Case("autocomplete-batchentry.batch-b-name",
         autocomplete("deliveries", "batchentry", "batch", ref("b.markers.delivery_name")),
         staff=Staff(sees="delivery_name")),
    Case("autocomplete-batchentry.referral",
         autocomplete("deliveries", "batchentry", "referral", ref("b.markers.email")),
         staff=Staff(sees="referral_external_id")),
    # The demo inbox's messages point at their delivery (the inbox itself is staff-only).
    Case("autocomplete-inboxmessage.delivery",
         autocomplete("demo", "inboxmessage", "delivery", "delivery-qz9"),
         a_sees="delivery_name", staff=Staff(sees="delivery_name")),
    # Attempts of real-time deliveries: what was sent and what came back, A's only.
    Case("attempt-list", delivery_page("changelist", "attempt"),
         a_sees="api_delivery_name", staff=Staff(sees="api_delivery_name")),
    Case("attempt-list-facets", delivery_page("changelist", "attempt", _facets="True"),
         a_sees="api_delivery_name", staff=Staff(sees="api_delivery_name")),
    Case("attempt-list-error-class-filter",
         delivery_page("changelist", "attempt", error_class=ref("a.markers.error_class")),
         a_sees="error_class", staff=Staff(sees="error_class")),
    Case("attempt-list-error-class-of-b",
         delivery_page("changelist", "attempt", error_class=ref("b.markers.error_class"),
                       _facets="True"),
         staff=Staff(sees="api_delivery_name")),
    Case("attempt-list-filter-outcome",
         delivery_page("changelist", "attempt", outcome__exact="rejected", _facets="True"),
         a_sees="api_delivery_name", staff=Staff(sees="api_delivery_name")),
    # The delivery page links its attempts so: B's delivery's are no list of A's.
    Case("attempt-list-lookup-delivery-b",
         delivery_page("changelist", "attempt", delivery__id__exact=ref("b.api_delivery.pk")),
         staff=Staff(sees="api_delivery_name")),
    Case("attempt-list-lookup-delivery-own",
         delivery_page("changelist", "attempt", delivery__id__exact=ref("a.api_delivery.pk")),
         a_sees="api_delivery_name"),
    # No client filter on attempts, for anyone: Django refuses the lookup (400).
    Case("attempt-list-lookup-client-b",
         delivery_page("changelist", "attempt", delivery__client__id__exact=ref("b.client.pk")),
         400, staff=Staff(status=400)),
    Case("attempt-list-lookup-referral-b",
         delivery_page("changelist", "attempt", referral_id=ref("b.referral.pk")),
         staff=Staff(sees="api_delivery_name")),
    Case("attempt-search-b-referral-id",
         delivery_page("changelist", "attempt", q=ref("b.referral.pk")),
         staff=Staff(sees="api_delivery_name")),
    Case("attempt-search-own-referral-id",
         delivery_page("changelist", "attempt", q=ref("a.referral.pk")),
         a_sees="api_delivery_name"),
    # Terms that are no referral id: an empty list, never an error page.
    Case("attempt-search-not-a-number", delivery_page("changelist", "attempt", q="qz9"),
         staff=Staff()),
    Case("attempt-search-superscript",
         delivery_page("changelist", "attempt", q=SUPERSCRIPT_TWO), staff=Staff()),
    Case("attempt-search-too-big", delivery_page("changelist", "attempt", q=TOO_BIG),
         staff=Staff()),
    Case("attempt-change-own", delivery_page("change", "attempt", "a"), a_sees="response_body"),
    Case("attempt-change-own-request", delivery_page("change", "attempt", "a"),
         a_sees="request_body"),
    Case("attempt-change-of-b", delivery_page("change", "attempt", "b"), NOT_FOUND,
         staff=Staff(sees="response_body")),
    Case("attempt-change-of-b-request", delivery_page("change", "attempt", "b"), NOT_FOUND,
         staff=Staff(sees="request_body")),
    Case("attempt-change-of-b-popup",
         delivery_page("change", "attempt", "b", _popup=1, _to_field="id"), NOT_FOUND,
         staff=Staff(sees="attempt_reason")),
    Case("attempt-history-own", delivery_page("history", "attempt", "a"), a_sees="api_host"),
    Case("attempt-history-of-b", delivery_page("history", "attempt", "b"), NOT_FOUND,
         staff=Staff(sees="api_host")),
    Case("attempt-delete-own", delivery_page("delete", "attempt", "a"), FORBIDDEN),
    Case("attempt-delete-of-b", delivery_page("delete", "attempt", "b"), NOT_FOUND,
         staff=Staff(status=FORBIDDEN)),
    Case("attempt-bare-id-of-b", delivery_page("object", "attempt", "b"), NOT_FOUND,
         staff=Staff(sees="response_header"), follow=True),
    Case("attempt-add", delivery_page("add", "attempt"), FORBIDDEN,
         staff=Staff(status=FORBIDDEN)),
    Case("autocomplete-attempt.delivery",
         autocomplete("deliveries", "attempt", "delivery", "apidelivery-qz9"),
         a_sees="api_delivery_name", staff=Staff(sees="api_delivery_name")),
    Case("autocomplete-attempt.delivery-b-name",
         autocomplete("deliveries", "attempt", "delivery", ref("b.markers.api_delivery_name")),
         staff=Staff(sees="api_delivery_name")),
    # Ledger rows have no admin, so no autocomplete answers for them.
    Case("autocomplete-attempt.item", autocomplete("deliveries", "attempt", "item", "qz9"),
         FORBIDDEN, staff=Staff(status=FORBIDDEN)),
    # Worker heartbeats: the platform's health, for account managers only.
    Case("workerheartbeat-list", heartbeat_page("changelist"), FORBIDDEN, staff=Staff()),
    Case("workerheartbeat-add", heartbeat_page("add"), FORBIDDEN, staff=Staff(status=FORBIDDEN)),
    Case("workerheartbeat-change", heartbeat_page("change", True), FORBIDDEN, staff=Staff()),
    Case("workerheartbeat-history", heartbeat_page("history", True), FORBIDDEN, staff=Staff()),
    Case("workerheartbeat-delete", heartbeat_page("delete", True), FORBIDDEN, staff=Staff()),
]

API_CASES = [
    Case("api-root", lambda w: API_ROOT),
    Case("api-erasures", lambda w: ERASURE_API, FORBIDDEN, staff=Staff()),
    Case("api-erasure-of-b", lambda w: f"{ERASURE_API}{w.receipt_b.pk}/", FORBIDDEN,
         staff=Staff()),
    Case("api-schema", lambda w: "/api/schema/"),
    Case("api-list", api_list(),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("api-list-large-page", api_list(page_size=1000),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("api-list-campaign-b", api_list(campaign=ref("b.markers.campaign_external_id")),
         staff=Staff(sees="referral_external_id")),
    Case("api-list-client-b", api_list(client=ref("b.client.slug")),
         staff=Staff(sees="referral_external_id")),
    Case("api-list-client-own", api_list(client=ref("a.client.slug")),
         a_sees="referral_external_id"),
    Case("api-list-created-range",
         api_list(created_after=moment_in_days(-1), created_before=moment_in_days(1)),
         a_sees="referral_external_id", staff=Staff(sees="referral_external_id")),
    Case("api-list-client-b-created-range",
         api_list(client=ref("b.client.slug"), created_after=moment_in_days(-1),
                  created_before=moment_in_days(1)),
         staff=Staff(sees="referral_external_id")),
    Case("api-detail-of-b", api_detail("b.referral"), NOT_FOUND, staff=Staff(sees="email")),
    Case("api-detail-of-b-twin", api_detail("b.twin"), NOT_FOUND,
         staff=Staff(sees="campaign_external_id")),
    Case("api-detail-of-b-json-suffix", api_detail("b.referral", ".json"), NOT_FOUND,
         staff=Staff(sees="email")),
    Case("api-detail-own", api_detail("a.referral"), a_sees="extra_value"),
    Case("api-customfields", lambda w: CF_API,
         a_sees="custom_value", staff=Staff(sees="custom_value")),
    Case("api-customfields-client-b", lambda w: _url(w, CF_API, {"client": ref("b.client.slug")}),
         staff=Staff(sees="custom_value")),
    Case("api-customfield-of-b", lambda w: f"{CF_API}{w.b.custom_field.pk}/", NOT_FOUND,
         staff=Staff(sees="custom_value")),
    Case("api-customfield-own", lambda w: f"{CF_API}{w.a.custom_field.pk}/",
         a_sees="custom_value"),
    Case("api-customfield-preview-get", lambda w: f"{CF_API}preview/", 405,
         staff=Staff(status=405)),
    # Deliveries: client users get their own, without secrets, login name or pinned key.
    Case("api-deliveries", delivery_api(),
         a_sees="delivery_name", staff=Staff(sees="remote_dir")),
    Case("api-deliveries-client-b", delivery_api(client=ref("b.client.slug")),
         staff=Staff(sees="delivery_name")),
    Case("api-deliveries-client-own", delivery_api(client=ref("a.client.slug")),
         a_sees="remote_dir"),
    Case("api-deliveries-kind", delivery_api(kind="sftp", active="true"),
         a_sees="last_error", staff=Staff(sees="last_error")),
    Case("api-delivery-of-b", delivery_api("b"), NOT_FOUND, staff=Staff(sees="last_error")),
    Case("api-delivery-of-b-json-suffix", lambda w: f"{DL_API}{w.b.delivery.pk}.json",
         NOT_FOUND, staff=Staff(sees="delivery_host")),
    Case("api-delivery-own", delivery_api("a"), a_sees="last_error"),
    Case("api-delivery-batches-of-b", delivery_api("b", "batches/"), NOT_FOUND,
         staff=Staff(sees="batch_file")),
    Case("api-delivery-batches-own", delivery_api("a", "batches/"), a_sees="batch_error"),
    Case("api-delivery-run-get-of-b", delivery_api("b", "run/"), 405, staff=Staff(status=405)),
    Case("api-delivery-test-get-of-b", delivery_api("b", "test/"), 405,
         staff=Staff(status=405)),
    # Real-time API deliveries: A gets where its referrals go, the manager also the headers.
    Case("api-deliveries-kind-api", delivery_api(kind="api"),
         a_sees="api_host", staff=Staff(sees="api_header")),
    Case("api-deliveries-client-b-kind-api", delivery_api(client=ref("b.client.slug"), kind="api"),
         staff=Staff(sees="body_template")),
    Case("api-delivery-own-api", delivery_api("a.api_delivery"), a_sees="api_host"),
    Case("api-delivery-of-b-api", delivery_api("b.api_delivery"), NOT_FOUND,
         staff=Staff(sees="api_header")),
    # Attempts: A's own delivery's, in full (headers redacted when written); B's are 404.
    Case("api-delivery-attempts-own", delivery_api("a.api_delivery", "attempts/"),
         a_sees="response_body"),
    Case("api-delivery-attempts-own-request", delivery_api("a.api_delivery", "attempts/"),
         a_sees="request_body"),
    Case("api-delivery-attempts-own-referral",
         delivery_api("a.api_delivery", "attempts/", referral=ref("a.referral.pk")),
         a_sees="attempt_reason"),
    Case("api-delivery-attempts-of-b", delivery_api("b.api_delivery", "attempts/"), NOT_FOUND,
         staff=Staff(sees="response_body")),
    Case("api-delivery-attempts-of-b-referral",
         delivery_api("b.api_delivery", "attempts/", referral=ref("b.referral.pk")), NOT_FOUND,
         staff=Staff(sees="response_header")),
    # B's referral id on A's own delivery: an empty page, not B's attempts.
    Case("api-delivery-attempts-own-referral-of-b",
         delivery_api("a.api_delivery", "attempts/", referral=ref("b.referral.pk"))),
    # No id at all (isdigit() says yes): refused as the schema's integer says, not a 500.
    Case("api-delivery-attempts-own-referral-superscript",
         delivery_api("a.api_delivery", "attempts/", referral=SUPERSCRIPT_TWO), 400),
    Case("api-delivery-attempts-of-b-file", delivery_api("b", "attempts/"), NOT_FOUND,
         staff=Staff()),
    Case("api-delivery-replay-get-of-b", delivery_api("b.api_delivery", "replay/"), 405,
         staff=Staff(status=405)),
    # Pause, resume, redeliver a range, rotate the signing secret: POST only, managers only.
    Case("api-delivery-pause-get-of-b", delivery_api("b", "pause/"), 405,
         staff=Staff(status=405)),
    Case("api-delivery-resume-get-of-b", delivery_api("b", "resume/"), 405,
         staff=Staff(status=405)),
    Case("api-delivery-redeliver-get-of-b", delivery_api("b", "redeliver/"), 405,
         staff=Staff(status=405)),
    Case("api-delivery-rotate-secret-get-of-b",
         delivery_api("b.api_delivery", "rotate-secret/"), 405, staff=Staff(status=405)),
]
# fmt: on


# --- Checks --------------------------------------------------------------------------------


def _body(response) -> str:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return raw.decode("utf-8", errors="replace").lower()


def _assert_no_b_markers(world: World, url: str, body: str) -> None:
    echoed = unquote_plus(url).lower()  # a page may repeat its own query (a search box)
    leaked = [
        marker
        for marker in world.b.markers.values()
        if marker.lower() in body and marker.lower() not in echoed
    ]
    assert not leaked, f"B's data reached user A at {url}: {leaked}"


def _assert_no_secret(world: World, url: str, body: str) -> None:
    """No response shows a delivery's stored secret, to anyone: A's and B's, never echoed."""
    shown = [s for t in (world.a, world.b) for s in t.markers.secrets() if s.lower() in body]
    assert not shown, f"a delivery secret is in the response at {url}: {shown}"


def _check_user_a(case: Case, world: World, response, url: str) -> None:
    body = _body(response)
    assert response.status_code == case.status, (url, body[:500])
    _assert_no_b_markers(world, url, body)
    _assert_no_secret(world, url, body)
    if case.a_sees:
        own = getattr(world.a.markers, case.a_sees).lower()
        assert own in body, f"A's own {case.a_sees} missing at {url}"


def _check_manager(case: Case, world: World, response, url: str) -> None:
    assert case.staff is not None
    body = _body(response)
    assert response.status_code == case.staff.status, (url, body[:500])
    _assert_no_secret(world, url, body)
    if case.staff.sees:
        theirs = getattr(world.b.markers, case.staff.sees).lower()
        assert theirs in body, f"the manager does not see B's {case.staff.sees} at {url}"


def _params(cases: list[Case], staff_only: bool = False):
    return [pytest.param(case, id=case.name) for case in cases if case.staff or not staff_only]


@pytest.mark.parametrize("case", _params(ADMIN_CASES))
def test_admin_client_user_gets_no_other_client_data(case: Case, world: World, client):
    client.force_login(world.a.user)
    url = case.url(world)
    _check_user_a(case, world, client.get(url, follow=case.follow), url)


@pytest.mark.parametrize("case", _params(ADMIN_CASES, staff_only=True))
def test_admin_manager_sees_every_client(case: Case, world: World, client):
    client.force_login(world.manager)
    url = case.url(world)
    _check_manager(case, world, client.get(url, follow=case.follow), url)


@pytest.mark.parametrize("case", _params(API_CASES))
def test_api_client_user_gets_no_other_client_data(case: Case, world: World):
    url = case.url(world)
    _check_user_a(case, world, api_client_for(world.a.user).get(url), url)


@pytest.mark.parametrize("case", _params(API_CASES, staff_only=True))
def test_api_manager_sees_every_client(case: Case, world: World):
    url = case.url(world)
    _check_manager(case, world, api_client_for(world.manager).get(url), url)


# --- Writes: refused, and nothing changes ---------------------------------------------------


@dataclass(frozen=True)
class Write:
    """A request that tries to change data; ``data`` values may be ``ref``s (or lists of
    them)."""

    name: str
    method: str
    url: Callable[[World], str]
    data: dict[str, Any]
    status: int
    api: bool = False

    def __str__(self) -> str:
        return self.name

    def payload(self, w: World) -> dict[str, Any]:
        def resolve(value: Any) -> Any:
            if isinstance(value, list):
                return [resolve(item) for item in value]
            return value(w) if callable(value) else value

        return {key: resolve(value) for key, value in self.data.items()}


# fmt: off
RENAME = "renamed-qz9"
CLIENT_FORM = {
    "name": RENAME, "slug": RENAME, "time_zone": "UTC", "active": "on",
    "retention_action": "anonymise",
    "campaigns-TOTAL_FORMS": "0", "campaigns-INITIAL_FORMS": "0",
}
CAMPAIGN_FORM = {"client": ref("a.client.pk"), "name": RENAME, "external_id": RENAME}
REFERRAL_FORM = {"email": "renamed@qz9.example", "last_name": RENAME}
CONFIRM = {"post": "yes"}
USER_FORM = {"username": RENAME, "is_superuser": "on", "is_active": "on"}
NEW_PASSWORD = {"password1": "Renamed-qz9-passphrase", "password2": "Renamed-qz9-passphrase"}


EXPORT_FORM = {"client": ref("a.client.pk"), "time_field": "created_at", "column_set": "custom",
               "format": "csv"}
CUSTOM_FIELD_FORM = {"client": ref("a.client.pk"), "name": "Renamed", "kind": "constant",
                     "constant": RENAME, "rules": "[]", "no_match": "default"}
CUSTOM_FIELD_API = {"client": ref("a.client.slug"), "name": "Renamed", "kind": "constant",
                    "constant": RENAME}


# A complete, valid delivery form as the manager would send it (for a client user, refused).
DELIVERY_FORM = {
    "client": ref("a.client.pk"), "name": RENAME, "kind": "sftp", "active": "on",
    "starts_at_0": days_from_today(0), "starts_at_1": "00:00:00", "all_campaigns": "on",
    "host": "renamed-qz9.invalid", "port": "22", "username": RENAME, "password": RENAME,
    "clear_private_key": "on", "clear_passphrase": "on", "remote_dir": RENAME,
    "host_key": "SHA256:renamed", "tls_mode": "explicit", "columns_text": "",
    "file_name_template": "{{{client}}}_{{{batch}}}.csv", "name_time_zone": "utc",
    "header": "on", "delimiter": ",", "quoting": "minimal", "marker": "none",
    "schedule_kind": "daily", "schedule_minute": "0", "schedule_time": "07:00",
}  # fmt: skip
DELIVERY_API = {"client": ref("a.client.slug"), "name": RENAME, "kind": "sftp",
                "host": "renamed-qz9.invalid", "username": RENAME, "password": RENAME,
                "host_key": "SHA256:renamed", "schedule_kind": "daily", "schedule_time": "07:00"}
DELIVERY_API_REALTIME = {
    "client": ref("a.client.slug"), "name": RENAME, "kind": "api",
    "url": "https://renamed-qz9.invalid/hook", "auth_kind": "bearer", "auth_secret": RENAME,
}  # fmt: skip
NEW_SIGNING_SECRET = _whsec("RenamedSigningQz9")
REDELIVER_FORM = {"start": days_from_today(-2), "end": days_from_today(2)}
PIN = {"pin": "SHA256:renamed"}


def delete_selected(model: str) -> dict[str, Any]:
    return selected("delete_selected", model, **CONFIRM)


def selected(action: str, model: str, **extra: Any) -> dict[str, Any]:
    """A changelist action on A's and B's ``model``."""
    chosen = [ref(f"a.{model}.pk"), ref(f"b.{model}.pk")]
    return {"action": action, "_selected_action": chosen, **extra}


def ingest(tenant: str) -> dict[str, Any]:
    return {
        "client": ref(f"{tenant}.client.slug"), "campaign": "new-camp-qz9",
        "external_id": "new-ref-qz9", "opted_in_at": moment_in_days(0),
    }


WRITE_CASES = [
    Write("client-add", "post", admin_page("add", "client"), CLIENT_FORM, FORBIDDEN),
    Write("client-change-own", "post", admin_page("change", "client", "a.client"), CLIENT_FORM,
          FORBIDDEN),
    Write("client-change-of-b", "post", admin_page("change", "client", "b.client"), CLIENT_FORM,
          NOT_FOUND),
    Write("client-delete-own", "post", admin_page("delete", "client", "a.client"), CONFIRM,
          FORBIDDEN),
    Write("client-delete-of-b", "post", admin_page("delete", "client", "b.client"), CONFIRM,
          NOT_FOUND),
    Write("campaign-add", "post", admin_page("add", "campaign"), CAMPAIGN_FORM, FORBIDDEN),
    Write("campaign-change-own", "post", admin_page("change", "campaign", "a.campaign"),
          CAMPAIGN_FORM, FORBIDDEN),
    Write("campaign-change-of-b", "post", admin_page("change", "campaign", "b.campaign"),
          CAMPAIGN_FORM, NOT_FOUND),
    Write("campaign-delete-own", "post", admin_page("delete", "campaign", "a.campaign"),
          CONFIRM, FORBIDDEN),
    Write("campaign-delete-of-b", "post", admin_page("delete", "campaign", "b.campaign"),
          CONFIRM, NOT_FOUND),
    Write("referral-add", "post", admin_page("add", "referral"), REFERRAL_FORM, FORBIDDEN),
    Write("referral-change-own", "post", admin_page("change", "referral", "a.referral"),
          REFERRAL_FORM, FORBIDDEN),
    Write("referral-change-of-b", "post", admin_page("change", "referral", "b.referral"),
          REFERRAL_FORM, NOT_FOUND),
    Write("referral-delete-own", "post", admin_page("delete", "referral", "a.referral"),
          CONFIRM, FORBIDDEN),
    Write("referral-delete-of-b", "post", admin_page("delete", "referral", "b.referral"),
          CONFIRM, NOT_FOUND),
    # A client user is offered no delete action: the changelist shows again, unchanged.
    Write("client-delete-selected", "post", admin_page("changelist", "client"),
          delete_selected("client"), OK),
    Write("campaign-delete-selected", "post", admin_page("changelist", "campaign"),
          delete_selected("campaign"), OK),
    Write("referral-delete-selected", "post", admin_page("changelist", "referral"),
          delete_selected("referral"), OK),
    Write("user-add", "post", user_page("add"), {**USER_FORM, **NEW_PASSWORD}, FORBIDDEN),
    Write("user-change-own", "post", user_page("change", "a"), USER_FORM, FORBIDDEN),
    Write("user-change-of-b", "post", user_page("change", "b"), USER_FORM, FORBIDDEN),
    Write("user-password-of-b", "post", user_page("password_change", "b"), NEW_PASSWORD,
          FORBIDDEN),
    Write("user-delete-of-b", "post", user_page("delete", "b"), CONFIRM, FORBIDDEN),
    Write("api-ingest-own-client", "post", api_list(), ingest("a"), FORBIDDEN, api=True),
    Write("api-ingest-b-client", "post", api_list(), ingest("b"), FORBIDDEN, api=True),
    Write("api-patch-of-b", "patch", api_detail("b.referral"), REFERRAL_FORM, 405, api=True),
    Write("api-put-own", "put", api_detail("a.referral"), REFERRAL_FORM, 405, api=True),
    Write("api-delete-of-b", "delete", api_detail("b.referral"), {}, 405, api=True),
    Write("export-own", "post", admin_page("export", "referral"), EXPORT_FORM, OK),
    Write("export-client-b", "post", admin_page("export", "referral"),
          {**EXPORT_FORM, "client": ref("b.client.pk")}, OK),
    Write("export-campaign-b", "post", admin_page("export", "referral"),
          {**EXPORT_FORM, "campaigns": [ref("b.campaign.pk")]}, OK),
    Write("customfield-add", "post", cf_page("add"), CUSTOM_FIELD_FORM, FORBIDDEN),
    Write("customfield-change-own", "post", cf_page("change", "a"), CUSTOM_FIELD_FORM,
          FORBIDDEN),
    Write("customfield-change-of-b", "post", cf_page("change", "b"), CUSTOM_FIELD_FORM,
          NOT_FOUND),
    Write("customfield-delete-of-b", "post", cf_page("delete", "b"), CONFIRM, NOT_FOUND),
    Write("customfield-preview", "post", cf_page("preview"), CUSTOM_FIELD_FORM, FORBIDDEN),
    Write("api-customfield-create", "post", lambda w: CF_API, CUSTOM_FIELD_API, FORBIDDEN,
          api=True),
    Write("api-customfield-patch-own", "patch", lambda w: f"{CF_API}{w.a.custom_field.pk}/",
          {"constant": RENAME}, FORBIDDEN, api=True),
    Write("api-customfield-delete-of-b", "delete", lambda w: f"{CF_API}{w.b.custom_field.pk}/",
          {}, FORBIDDEN, api=True),
    Write("api-customfield-preview-b", "post", lambda w: f"{CF_API}preview/",
          {**CUSTOM_FIELD_API, "client": ref("b.client.slug")}, FORBIDDEN, api=True),
    # Deliveries: client users change nothing, run nothing, test nothing.
    Write("delivery-add", "post", delivery_page("add"), DELIVERY_FORM, FORBIDDEN),
    Write("delivery-add-for-b", "post", delivery_page("add"),
          {**DELIVERY_FORM, "client": ref("b.client.pk")}, FORBIDDEN),
    Write("delivery-change-own", "post", delivery_page("change", of="a"), DELIVERY_FORM,
          FORBIDDEN),
    Write("delivery-change-of-b", "post", delivery_page("change", of="b"), DELIVERY_FORM,
          NOT_FOUND),
    Write("delivery-delete-own", "post", delivery_page("delete", of="a"), CONFIRM, FORBIDDEN),
    Write("delivery-delete-of-b", "post", delivery_page("delete", of="b"), CONFIRM, NOT_FOUND),
    Write("delivery-send-now-own", "post", delivery_action("send_now", "a"), {}, FORBIDDEN),
    Write("delivery-send-now-of-b", "post", delivery_action("send_now", "b"), {}, NOT_FOUND),
    Write("delivery-test-own", "post", delivery_action("test", "a"), {}, FORBIDDEN),
    Write("delivery-test-of-b", "post", delivery_action("test", "b"), {}, NOT_FOUND),
    Write("delivery-fetch-key-post-of-b", "post", delivery_action("fetch_key", "b"), {},
          NOT_FOUND),
    Write("delivery-fetch-key-post-own", "post", delivery_action("fetch_key", "a"), {},
          FORBIDDEN),
    Write("delivery-fetch-key-post-too-big", "post", delivery_action("fetch_key", TOO_BIG), {},
          NOT_FOUND),
    Write("delivery-pin-key-own", "post", delivery_action("pin_key", "a"), PIN, FORBIDDEN),
    Write("delivery-pin-key-of-b", "post", delivery_action("pin_key", "b"), PIN, NOT_FOUND),
    Write("delivery-pause-own", "post", delivery_action("pause", "a"), {}, FORBIDDEN),
    Write("delivery-pause-of-b", "post", delivery_action("pause", "b"), {}, NOT_FOUND),
    Write("delivery-resume-own", "post", delivery_action("resume", "a"), {}, FORBIDDEN),
    Write("delivery-resume-of-b", "post", delivery_action("resume", "b"), {}, NOT_FOUND),
    Write("delivery-redeliver-own", "post", delivery_action("redeliver", "a"), REDELIVER_FORM,
          FORBIDDEN),
    Write("delivery-redeliver-of-b", "post", delivery_action("redeliver", "b"), REDELIVER_FORM,
          NOT_FOUND),
    # The changelist actions are offered to account managers only: the list shows again.
    Write("delivery-send-now-selected", "post", delivery_page("changelist"),
          selected("send_now", "delivery"), OK),
    Write("delivery-pause-selected", "post", delivery_page("changelist"),
          selected("pause", "delivery"), OK),
    Write("delivery-resume-selected", "post", delivery_page("changelist"),
          selected("resume", "delivery"), OK),
    Write("delivery-delete-selected", "post", delivery_page("changelist"),
          delete_selected("delivery"), OK),
    Write("batch-resend-selected", "post", delivery_page("changelist", "batch"),
          selected("resend", "batch"), OK),
    Write("batch-change-of-b", "post", delivery_page("change", "batch", "b"), {"error": RENAME},
          NOT_FOUND),
    Write("batch-delete-of-b", "post", delivery_page("delete", "batch", "b"), CONFIRM,
          NOT_FOUND),
    Write("api-delivery-create", "post", delivery_api(), DELIVERY_API, FORBIDDEN, api=True),
    Write("api-delivery-create-for-b", "post", delivery_api(),
          {**DELIVERY_API, "client": ref("b.client.slug")}, FORBIDDEN, api=True),
    Write("api-delivery-patch-own", "patch", delivery_api("a"), {"name": RENAME}, FORBIDDEN,
          api=True),
    Write("api-delivery-patch-of-b", "patch", delivery_api("b"), {"password": RENAME},
          FORBIDDEN, api=True),
    Write("api-delivery-put-of-b", "put", delivery_api("b"),
          {**DELIVERY_API, "client": ref("b.client.slug")}, FORBIDDEN, api=True),
    Write("api-delivery-delete-of-b", "delete", delivery_api("b"), {}, FORBIDDEN, api=True),
    Write("api-delivery-run-own", "post", delivery_api("a", "run/"), {}, FORBIDDEN, api=True),
    Write("api-delivery-run-of-b", "post", delivery_api("b", "run/"), {}, FORBIDDEN, api=True),
    Write("api-delivery-test-own", "post", delivery_api("a", "test/"), {}, FORBIDDEN, api=True),
    Write("api-delivery-test-of-b", "post", delivery_api("b", "test/"), {}, FORBIDDEN,
          api=True),
    # Real-time API deliveries: no test referral, no replay, no new signing secret.
    Write("delivery-change-own-api", "post", delivery_page("change", of="a", obj="api_delivery"),
          {**DELIVERY_FORM, "kind": "api", "url": "https://renamed-qz9.invalid/hook"},
          FORBIDDEN),
    Write("delivery-change-of-b-api", "post",
          delivery_page("change", of="b", obj="api_delivery"),
          {**DELIVERY_FORM, "kind": "api", "signing_secret": NEW_SIGNING_SECRET}, NOT_FOUND),
    Write("delivery-delete-of-b-api", "post",
          delivery_page("delete", of="b", obj="api_delivery"), CONFIRM, NOT_FOUND),
    Write("delivery-test-own-api", "post", delivery_action("test", "a.api_delivery"), {},
          FORBIDDEN),
    Write("delivery-test-of-b-api", "post", delivery_action("test", "b.api_delivery"), {},
          NOT_FOUND),
    Write("delivery-replay-failed-own", "post",
          delivery_action("replay_failed", "a.api_delivery"), {}, FORBIDDEN),
    Write("delivery-replay-failed-of-b", "post",
          delivery_action("replay_failed", "b.api_delivery"), {}, NOT_FOUND),
    Write("delivery-replay-referral-own", "post",
          delivery_action("replay_referral", "a.api_delivery"),
          {"referral": ref("a.referral.pk")}, FORBIDDEN),
    Write("delivery-replay-referral-own-with-b-referral", "post",
          delivery_action("replay_referral", "a.api_delivery"),
          {"referral": ref("b.referral.pk")}, FORBIDDEN),
    Write("delivery-replay-referral-of-b", "post",
          delivery_action("replay_referral", "b.api_delivery"),
          {"referral": ref("b.referral.pk")}, NOT_FOUND),
    Write("delivery-replay-referral-too-big", "post", delivery_action("replay_referral", TOO_BIG),
          {"referral": ref("b.referral.pk")}, NOT_FOUND),
    Write("delivery-rotate-secret-own", "post",
          delivery_action("rotate_secret", "a.api_delivery"), {}, FORBIDDEN),
    Write("delivery-rotate-secret-of-b", "post",
          delivery_action("rotate_secret", "b.api_delivery"), {}, NOT_FOUND),
    Write("delivery-redeliver-own-api", "post", delivery_action("redeliver", "a.api_delivery"),
          REDELIVER_FORM, FORBIDDEN),
    Write("delivery-redeliver-of-b-api", "post", delivery_action("redeliver", "b.api_delivery"),
          REDELIVER_FORM, NOT_FOUND),
    Write("delivery-pause-selected-api", "post", delivery_page("changelist"),
          selected("pause", "api_delivery"), OK),
    Write("attempt-change-of-b", "post", delivery_page("change", "attempt", "b"),
          {"reason": RENAME}, NOT_FOUND),
    Write("attempt-delete-own", "post", delivery_page("delete", "attempt", "a"), CONFIRM,
          FORBIDDEN),
    Write("attempt-delete-of-b", "post", delivery_page("delete", "attempt", "b"), CONFIRM,
          NOT_FOUND),
    Write("attempt-delete-selected", "post", delivery_page("changelist", "attempt"),
          delete_selected("attempt"), OK),
    Write("api-delivery-create-api", "post", delivery_api(), DELIVERY_API_REALTIME, FORBIDDEN,
          api=True),
    Write("api-delivery-patch-own-api", "patch", delivery_api("a.api_delivery"),
          {"signing_secret": NEW_SIGNING_SECRET}, FORBIDDEN, api=True),
    Write("api-delivery-patch-of-b-api", "patch", delivery_api("b.api_delivery"),
          {"auth_secret": RENAME, "url": "https://renamed-qz9.invalid/hook"}, FORBIDDEN,
          api=True),
    Write("api-delivery-test-own-api", "post", delivery_api("a.api_delivery", "test/"), {},
          FORBIDDEN, api=True),
    Write("api-delivery-test-of-b-api", "post", delivery_api("b.api_delivery", "test/"), {},
          FORBIDDEN, api=True),
    Write("api-delivery-replay-own", "post", delivery_api("a.api_delivery", "replay/"),
          {"not_delivered": True}, FORBIDDEN, api=True),
    Write("api-delivery-replay-own-referral", "post", delivery_api("a.api_delivery", "replay/"),
          {"referral": ref("a.referral.pk")}, FORBIDDEN, api=True),
    Write("api-delivery-replay-own-range", "post", delivery_api("a.api_delivery", "replay/"),
          {"start": moment_in_days(-2), "end": moment_in_days(2)}, FORBIDDEN, api=True),
    Write("api-delivery-replay-of-b", "post", delivery_api("b.api_delivery", "replay/"),
          {"referral": ref("b.referral.pk")}, FORBIDDEN, api=True),
    Write("api-delivery-replay-of-b-not-delivered", "post",
          delivery_api("b.api_delivery", "replay/"), {"not_delivered": True}, FORBIDDEN,
          api=True),
    Write("api-delivery-pause-own", "post", delivery_api("a", "pause/"), {}, FORBIDDEN,
          api=True),
    Write("api-delivery-pause-of-b", "post", delivery_api("b", "pause/"),
          {"reason": RENAME}, FORBIDDEN, api=True),
    Write("api-delivery-resume-own", "post", delivery_api("a", "resume/"), {}, FORBIDDEN,
          api=True),
    Write("api-delivery-resume-of-b", "post", delivery_api("b", "resume/"), {}, FORBIDDEN,
          api=True),
    Write("api-delivery-redeliver-own", "post", delivery_api("a", "redeliver/"),
          {"start": moment_in_days(-2), "end": moment_in_days(2)}, FORBIDDEN, api=True),
    Write("api-delivery-redeliver-of-b", "post", delivery_api("b", "redeliver/"),
          {"start": moment_in_days(-2), "end": moment_in_days(2)}, FORBIDDEN, api=True),
    Write("api-delivery-redeliver-own-api", "post", delivery_api("a.api_delivery", "redeliver/"),
          {"start": moment_in_days(-2), "end": moment_in_days(2)}, FORBIDDEN, api=True),
    Write("api-delivery-rotate-secret-own", "post",
          delivery_api("a.api_delivery", "rotate-secret/"), {}, FORBIDDEN, api=True),
    Write("api-delivery-rotate-secret-of-b", "post",
          delivery_api("b.api_delivery", "rotate-secret/"), {}, FORBIDDEN, api=True),
]
# fmt: on


DELIVERY_COLUMNS = (
    "pk", "client", "name", "kind", "active", "paused_at", "paused_reason", "host", "port",
    "username", "password", "private_key", "passphrase", "remote_dir", "host_key",
    "certificate_fingerprint", "schedule_kind", "schedule_time", "next_run_at", "last_error",
    "url", "http_method", "body_format", "body_template", "headers", "auth_kind",
    "auth_username", "auth_secret", "auth_key_name", "signing_secret",
    "previous_signing_secret", "previous_secret_until", "updated_at",
)  # fmt: skip
ITEM_COLUMNS = (
    "pk", "delivery", "referral", "status", "attempts", "next_attempt_at", "lease_until",
    "reason", "delivered_at",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "pk", "delivery", "item", "referral_id", "number", "test", "url", "request_headers",
    "request_body", "status_code", "response_body", "outcome", "reason",
)  # fmt: skip
BATCH_COLUMNS = (
    "pk", "delivery", "number", "kind", "status", "rows", "files", "error", "attempts",
    "next_attempt_at", "requested_by",
)  # fmt: skip


def _snapshot() -> dict[str, list]:
    """Every row a write by a client user could touch."""
    return {
        "clients": sorted(Client.objects.values_list("pk", "name", "slug", "time_zone", "active")),
        "campaigns": sorted(Campaign.objects.values_list("pk", "client", "name", "external_id")),
        "referrals": sorted(Referral.objects.values_list("pk", "client", "campaign", "email")),
        "memberships": sorted(ClientMembership.objects.values_list("user", "client")),
        "users": sorted(
            User.objects.values_list(
                "pk", "username", "email", "password", "is_staff", "is_superuser", "is_active"
            )
        ),
        "tokens": sorted(Token.objects.values_list("user", "key")),
        "custom_fields": sorted(
            CustomField.objects.values_list("pk", "client", "name", "constant")
        ),
        "deliveries": sorted(Delivery.objects.values_list(*DELIVERY_COLUMNS)),
        "delivery_campaigns": sorted(
            Delivery.campaigns.through.objects.values_list("delivery", "campaign")
        ),
        "batches": sorted(Batch.objects.values_list(*BATCH_COLUMNS)),
        "delivery_items": sorted(DeliveryItem.objects.values_list(*ITEM_COLUMNS)),
        "batch_entries": sorted(BatchEntry.objects.values_list("pk", "batch", "referral")),
        "attempts": sorted(Attempt.objects.values_list(*ATTEMPT_COLUMNS)),
    }


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in WRITE_CASES])
def test_client_user_writes_are_refused_and_change_nothing(
    case: Write, world: World, client, django_capture_on_commit_callbacks
):
    if case.api:
        http = api_client_for(world.a.user)
        send = partial(getattr(http, case.method), format="json")
    else:
        client.force_login(world.a.user)
        send = getattr(client, case.method)
    url, data = case.url(world), case.payload(world)
    before = _snapshot()
    # A refused write queues no task either (a run, an export) for after the commit.
    with django_capture_on_commit_callbacks() as queued:
        response = send(url, data)
    body = _body(response)
    assert response.status_code == case.status, (url, body[:500])
    _assert_no_b_markers(world, url, body)
    _assert_no_secret(world, url, body)
    assert _snapshot() == before
    assert not queued, f"{url} queued work after a refused write: {queued}"


# --- Deliveries: secrets and the failing-deliveries banner ----------------------------------


def test_manager_runs_what_client_users_are_refused_and_never_sees_a_secret(
    world: World, client, django_capture_on_commit_callbacks
):
    """The delivery writes of WRITE_CASES work for the account manager, on B's delivery (so a
    client user's refusal is the rule, not a broken URL), and no response of theirs shows a
    secret: not the form shown again with errors, not a connection test's or key fetch's
    message, not an API answer."""
    client.force_login(world.manager)
    api = api_client_for(world.manager)
    delivery = world.b.delivery
    new_password, api_password = "bravonewsecret-qz9", "bravoapisecret-qz9"
    secrets = [*world.a.markers.secrets(), *world.b.markers.secrets(), new_password, api_password]
    form = {key: value(world) if callable(value) else value for key, value in DELIVERY_FORM.items()}
    change = reverse("admin:deliveries_delivery_change", args=[delivery.pk])

    def button(name: str) -> str:
        return reverse(f"admin:deliveries_{name}", args=[delivery.pk])

    def check(step: str, response, status: int, says: str | None = None) -> str:
        body = _body(response)
        assert response.status_code == status, (step, body[:500])
        shown = [secret for secret in secrets if secret.lower() in body]
        assert not shown, f"a delivery secret reached the manager ({step}): {shown}"
        if says:
            assert says in body, (step, body[:2000])
        return body

    check("change page", client.get(change), OK, world.b.markers.remote_dir)
    check("test", client.post(button("test"), follow=True), OK, "connection test failed")
    check("fetch key", client.post(button("fetch_key"), follow=True), OK, "could not fetch")
    check("redeliver form", client.get(button("redeliver")), OK, world.b.markers.delivery_name)
    # Blank secret fields keep the stored ones, which are checked (and refused: the stored key
    # is no key) and must not come back in the form shown again.
    kept = {k: v for k, v in form.items() if not k.startswith("clear_")}
    check("form with errors", client.post(change, {**kept, "password": "", "port": "0"}), OK,
          "a port is 1 to 65535")  # fmt: skip
    check("save", client.post(change, {**form, "password": new_password}, follow=True), OK)
    delivery.refresh_from_db()
    assert (delivery.name, delivery.password, delivery.private_key) == (RENAME, new_password, "")
    check("history", client.get(reverse("admin:deliveries_delivery_history",
                                        args=[delivery.pk])), OK, "changed")  # fmt: skip
    check("pin key", client.post(button("pin_key"), PIN, follow=True), OK, "pinned")
    check("pause", client.post(button("pause"), follow=True), OK, "paused")
    delivery.refresh_from_db()
    assert (delivery.host_key, delivery.paused) == (PIN["pin"], True)
    with django_capture_on_commit_callbacks() as queued:
        check("resume", client.post(button("resume"), follow=True), OK, "resumed")
        check("send now", client.post(button("send_now"), follow=True), OK, "queued")
    assert len(queued) == 2
    redeliver = {key: value(world) for key, value in REDELIVER_FORM.items()}
    check("redeliver", client.post(button("redeliver"), redeliver, follow=True), OK)
    assert delivery.batches.filter(kind="redelivery").exists()

    detail = f"{DL_API}{delivery.pk}/"
    assert api.get(detail).json()["password_set"] is True
    check("api detail", api.get(detail), OK, world.b.markers.last_error)
    check("api test", api.post(f"{detail}test/"), OK, '"ok":false')
    patch = {"kind": delivery.kind, "remote_dir": "patched-qz9"}
    check("api patch", api.patch(detail, patch, format="json"), OK)
    with django_capture_on_commit_callbacks() as queued:
        check("api run", api.post(f"{detail}run/"), 202)
    assert len(queued) == 1
    check("api batches", api.get(f"{detail}batches/"), OK, world.b.markers.batch_file)
    created = {**DELIVERY_API, "client": world.b.client.slug, "name": "apimade-qz9",
               "password": api_password}  # fmt: skip
    check("api create", api.post(DL_API, created, format="json"), 201)
    assert Delivery.objects.get(client=world.b.client, name="apimade-qz9").password == api_password
    check("api list", api.get(DL_API), OK, "apimade-qz9")
    check("delivery list", client.get(reverse("admin:deliveries_delivery_changelist")), OK,
          "apimade-qz9")  # fmt: skip


def test_manager_runs_realtime_actions_and_never_sees_a_stored_secret(
    world: World, client, django_capture_on_commit_callbacks
):
    """The real-time writes of WRITE_CASES work for the account manager on B's API delivery
    (a test referral, replays, a new signing secret), and no response shows a stored secret:
    a new signing secret is shown once, where it is made, and never again. A test referral
    really goes out (to a name that does not resolve) and its logged request holds the token
    as ``[redacted]`` only."""
    client.force_login(world.manager)
    api = api_client_for(world.manager)
    delivery, m = world.b.api_delivery, world.b.markers
    stored = [*world.a.markers.secrets(), *m.secrets()]
    shown_once: list[str] = []  # secrets made by a rotation or a create, shown that once

    def check(step: str, response, status: int, says: str | None = None) -> str:
        body = _body(response)
        assert response.status_code == status, (step, body[:500])
        shown = [secret for secret in [*stored, *shown_once] if secret.lower() in body]
        assert not shown, f"a delivery secret reached the manager ({step}): {shown}"
        if says:
            assert says.lower() in body, (step, body[:2000])
        return body

    def button(name: str, **data: Any):
        return client.post(reverse(f"admin:deliveries_{name}", args=[delivery.pk]), data,
                           follow=True)  # fmt: skip

    def item() -> DeliveryItem:
        return DeliveryItem.objects.get(delivery=delivery, referral=world.b.referral)

    change = reverse("admin:deliveries_delivery_change", args=[delivery.pk])
    check("change page", client.get(change), OK, m.api_header)
    check("change page attempts", client.get(change), OK, m.attempt_reason)
    # A test referral: the same request as live delivery, sent, logged, failing on DNS.
    before = set(delivery.attempts.values_list("pk", flat=True))
    check("test", button("test"), OK, "test referral not delivered")
    [test_attempt] = delivery.attempts.exclude(pk__in=before)
    assert test_attempt.test and test_attempt.error_class == "dns", test_attempt.reason
    headers = dict(test_attempt.request_headers)
    assert headers["Authorization"] == "[redacted]"
    assert headers["X-Partner-Note"] == m.api_header
    assert headers["webhook-signature"].count("v1,") == 2  # signed with both secrets
    logged = json.dumps([getattr(test_attempt, f) for f in ATTEMPT_COLUMNS[3:]]).lower()
    assert not [s for s in stored if s.lower() in logged], logged
    attempt_page = reverse("admin:deliveries_attempt_change", args=[test_attempt.pk])
    check("test attempt page", client.get(attempt_page), OK, "[redacted]")
    # Replays: queued on commit; a referral of another client is not this delivery's.
    with django_capture_on_commit_callbacks() as queued:
        check("replay failed", button("replay_failed"), OK, "1 referral(s) not delivered")
    assert len(queued) == 1 and item().status == "pending"
    with django_capture_on_commit_callbacks() as queued:
        check("replay referral of a", button("replay_referral", referral=world.a.referral.pk),
              OK, "not one this delivery sends")  # fmt: skip
        check("replay referral", button("replay_referral", referral=world.b.referral.pk), OK,
              "is being sent again")  # fmt: skip
    assert len(queued) == 1
    redeliver = {key: value(world) for key, value in REDELIVER_FORM.items()}
    with django_capture_on_commit_callbacks() as queued:
        check("replay range", button("redeliver", **redeliver), OK, "2 referral(s) of the range")
    assert len(queued) == 1 and not delivery.batches.exists()
    # A new signing secret: shown on the page that made it, the old one signs on for a day.
    body = check("rotate", button("rotate_secret"), OK, "shown this once")
    delivery.refresh_from_db()
    assert delivery.previous_signing_secret == m.signing_secret
    assert delivery.signing_secret.lower() in body
    shown_once.append(delivery.signing_secret)
    check("change page after rotation", client.get(change), OK, m.api_delivery_name)

    detail = f"{DL_API}{delivery.pk}/"
    data = api.get(detail).json()
    assert data["auth_secret_set"] is True and "signing_secret" not in data
    check("api detail", api.get(detail), OK, m.api_header)
    check("api attempts", api.get(f"{detail}attempts/"), OK, m.response_body)
    check("api attempts of referral", api.get(f"{detail}attempts/",
          {"referral": world.b.referral.pk}), OK, m.request_body)  # fmt: skip
    body = check("api attempts of a's referral", api.get(f"{detail}attempts/",
                 {"referral": world.a.referral.pk}), OK)  # fmt: skip
    assert json.loads(body)["count"] == 0
    check("api test", api.post(f"{detail}test/"), OK, '"ok":false')
    with django_capture_on_commit_callbacks() as queued:
        check("api replay", api.post(f"{detail}replay/", {"referral": world.b.referral.pk},
              format="json"), OK, '"replayed":1')  # fmt: skip
        check("api replay of a's referral", api.post(f"{detail}replay/", {
            "referral": world.a.referral.pk}, format="json"), OK, '"replayed":0')  # fmt: skip
        check("api replay not delivered", api.post(f"{detail}replay/", {"not_delivered": True},
              format="json"), OK, '"replayed":0')  # fmt: skip
    assert len(queued) == 1
    created = {key: value(world) if callable(value) else value
               for key, value in DELIVERY_API_REALTIME.items()}  # fmt: skip
    created.update(client=world.b.client.slug, name="apimade-qz9", auth_secret="bravoapitoken-qz9")
    stored.append("bravoapitoken-qz9")
    response = api.post(DL_API, created, format="json")
    secret = response.json().get("signing_secret", "")
    assert response.status_code == 201 and secret.startswith("whsec_"), response.json()
    shown_once.append(secret)
    made = Delivery.objects.get(client=world.b.client, name="apimade-qz9")
    assert (made.signing_secret, made.auth_secret) == (secret, "bravoapitoken-qz9")
    check("api created detail", api.get(f"{DL_API}{made.pk}/"), OK, "renamed-qz9.invalid")
    check("api list", api.get(DL_API, {"kind": "api"}), OK, "apimade-qz9")
    check("delivery list", client.get(reverse("admin:deliveries_delivery_changelist")), OK,
          "apimade-qz9")  # fmt: skip
    check("attempt list", client.get(reverse("admin:deliveries_attempt_changelist")), OK,
          m.api_delivery_name)  # fmt: skip


def test_a_url_the_sender_cannot_parse_puts_no_secret_in_a_log(world: World, caplog):
    """An API key sent in the query string is redacted from the attempt log; an address the
    HTTP client refuses to parse must not bring it back in an error message."""
    from tests.two_factor import TwoStepClient as TestClient

    m = world.b.markers
    Delivery.objects.filter(pk=world.b.api_delivery.pk).update(
        url=f"https://{m.api_host}:99999/hook", auth_kind="api_key_query", auth_key_name="apikey"
    )
    http = TestClient(raise_request_exception=False)
    http.force_login(world.manager)
    url = reverse("admin:deliveries_test", args=[world.b.api_delivery.pk])
    response = http.post(url, follow=True)
    _assert_no_secret(world, f"{url} (response or log)", _body(response) + caplog.text.lower())
    assert response.status_code == OK, _body(response)[:500]


def test_failing_deliveries_banner_is_for_account_managers_only(world: World, client):
    """Every admin page lists failing and paused deliveries to account managers; a client user
    gets no banner at all (B's failing delivery least of all), and sees their own state in
    their list."""
    now = timezone.now()
    Delivery.objects.filter(pk=world.a.delivery.pk).update(failing_since=now)
    Delivery.objects.filter(pk=world.b.delivery.pk).update(failing_since=now, paused_at=now)
    pages = [reverse("admin:index"), reverse("admin:referrals_referral_changelist"),
             reverse("admin:deliveries_delivery_changelist"),
             reverse("admin:deliveries_delivery_change", args=[world.a.delivery.pk])]  # fmt: skip
    client.force_login(world.a.user)
    for url in pages:
        response = client.get(url)
        body = _body(response)
        assert response.status_code == OK, (url, body[:500])
        _assert_no_b_markers(world, url, body)
        assert "failing-deliveries" not in body, url
    assert world.a.markers.last_error in _body(client.get(pages[2]))

    client.force_login(world.manager)
    body = _body(client.get(pages[1]))
    assert "2 deliveries need attention" in body
    assert world.a.markers.delivery_name in body and world.b.markers.delivery_name in body
    _assert_no_secret(world, pages[1], body)


# --- The tables cover every URL ------------------------------------------------------------


def _covered_models() -> list[type[models.Model]]:
    return [
        model
        for model in admin.site._registry
        if model._meta.app_label in TENANT_APPS or model in SENSITIVE_MODELS
    ]


def _url_names(world: World, cases: list[Case]) -> set[str]:
    return {resolve(urlsplit(case.url(world)).path).url_name for case in cases}


def test_every_admin_url_has_a_row(world: World):
    wanted = {"index", "app_list", "autocomplete", "view_on_site"}
    for model in _covered_models():
        wanted |= {p.name for p in admin.site._registry[model].get_urls() if p.name}
    missing = wanted - _url_names(world, ADMIN_CASES)
    assert not missing, f"admin URLs without a row in ADMIN_CASES: {sorted(missing)}"


def test_every_api_endpoint_has_a_row(world: World):
    patterns = [
        *api_urls.urlpatterns,
        *customfield_api_urls.urlpatterns,
        *delivery_api_urls.urlpatterns,
        *privacy_api_urls.urlpatterns,
    ]
    wanted = {p.name for p in patterns if p.name}
    missing = wanted - _url_names(world, API_CASES)
    assert not missing, f"API endpoints without a row in API_CASES: {sorted(missing)}"


def test_every_autocomplete_source_has_a_row(world: World):
    """Each foreign key whose target admin answers autocomplete (has search_fields) and holds
    client data or users, keyed as AutocompleteJsonView reads it: the source model and field."""
    targets = set(_covered_models())
    wanted = set()
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if not (field.is_relation and field.concrete and field.related_model in targets):
                continue
            if admin.site._registry[field.related_model].get_search_fields(None):
                wanted.add((model._meta.app_label, model._meta.model_name, field.name))
    rows = set()
    for case in ADMIN_CASES:
        query = dict(parse_qsl(urlsplit(case.url(world)).query))
        if {"app_label", "model_name", "field_name"} <= query.keys():
            rows.add((query["app_label"], query["model_name"], query["field_name"]))
    missing = wanted - rows
    assert not missing, f"autocomplete sources without a row in ADMIN_CASES: {sorted(missing)}"


def test_markers_are_unique_to_their_tenant(world: World):
    """The leak check means something only if no marker of B occurs in A's data."""
    a_values = " ".join(world.a.markers.values()).lower()
    for marker in world.b.markers.values():
        assert marker.lower() not in a_values
    b_rows = Referral.objects.filter(client=world.b.client)
    assert set(b_rows.values_list("campaign__name", flat=True)) == {world.b.markers.campaign_name}
    assert world.b.referral.extra == {"note": world.b.markers.extra_value}
    # The secrets are stored encrypted, as any saved through the admin or the API.
    for delivery, fields in ((world.b.delivery, FILE_SECRET_FIELDS),
                             (world.b.api_delivery, API_SECRET_FIELDS)):  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(fields)} FROM {Delivery._meta.db_table} "
                           "WHERE id = %s", [delivery.pk])  # fmt: skip
            stored = cursor.fetchone()
        assert all(value.startswith("fernet:") for value in stored), fields
        delivery.refresh_from_db()
        assert [getattr(delivery, name) for name in fields] == [
            getattr(world.b.markers, name) for name in fields
        ]
    # The real-time delivery is one the platform would accept and send, signed with both of
    # its secrets (the previous one's overlap lasts): the manager's test referral is real.
    assert not delivery_errors(world.b.api_delivery)
    assert signing_secrets(world.b.api_delivery) == [
        world.b.markers.signing_secret,
        world.b.markers.previous_signing_secret,
    ]
