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

``WRITE_CASES`` holds requests that try to change data; each must be refused and leave the
database exactly as it was.

``test_every_admin_url_has_a_row`` and friends fail when a new admin URL, API endpoint or
autocomplete source appears without a row here: a new feature (custom fields, deliveries,
exports) adds its rows to the tables, and its app to ``TENANT_APPS``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.urls import resolve, reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from customfields.api import urls as customfield_api_urls
from customfields.models import CustomField
from referrals.api import urls as api_urls
from referrals.models import Campaign, Client, ClientMembership, ExportAudit, Referral
from referrals.roles import client_user_create
from tests.conftest import PASSWORD, api_client_for
from tests.factories import make_referral

User = get_user_model()

# Apps whose admin pages hold client data: every URL of their model admins needs a row.
TENANT_APPS = ("referrals", "customfields")
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
        )

    def values(self) -> tuple[str, ...]:
        return dataclasses.astuple(self)


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


@dataclass
class World:
    a: Tenant
    b: Tenant
    manager: Any


def _tenant(client: Client, user, tag: str) -> Tenant:
    m = Markers.for_tag(tag)
    client.name = m.client_name
    client.save(update_fields=["name"])
    user.username, user.email = m.username, m.user_email
    user.save(update_fields=["username", "email"])
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
                                       filters={"note": m.extra_value})  # fmt: skip
    return Tenant(client, referral.campaign, referral, twin, user, m, custom_field, audit)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Three users per test: the default hasher would make this suite's setup take minutes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(client_a, client_b, user_a, manager) -> World:
    user_b = client_user_create(client=client_b, username="b-user", password=PASSWORD)
    return World(
        a=_tenant(client_a, user_a, "alpha"), b=_tenant(client_b, user_b, "bravo"), manager=manager
    )


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


API_ROOT = "/api/v1/"
API = "/api/v1/referrals/"
CF_API = "/api/v1/custom-fields/"


def api_list(**params: Any):
    return lambda w: _url(w, API, params)


def api_detail(of: str, suffix: str = "/"):
    return lambda w: f"{API}{ref(of)(w).pk}{suffix}"


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
    # Export: the form offers A's campaigns only; the audit is for account managers.
    Case("referral-export-form", admin_page("export", "referral"),
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
]

API_CASES = [
    Case("api-root", lambda w: API_ROOT),
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


def _check_user_a(case: Case, world: World, response, url: str) -> None:
    body = _body(response)
    assert response.status_code == case.status, (url, body[:500])
    _assert_no_b_markers(world, url, body)
    if case.a_sees:
        own = getattr(world.a.markers, case.a_sees).lower()
        assert own in body, f"A's own {case.a_sees} missing at {url}"


def _check_manager(case: Case, world: World, response, url: str) -> None:
    assert case.staff is not None
    body = _body(response)
    assert response.status_code == case.staff.status, (url, body[:500])
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


def delete_selected(model: str) -> dict[str, Any]:
    chosen = [ref(f"a.{model}.pk"), ref(f"b.{model}.pk")]
    return {"action": "delete_selected", "_selected_action": chosen, **CONFIRM}


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
]
# fmt: on


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
    }


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in WRITE_CASES])
def test_client_user_writes_are_refused_and_change_nothing(case: Write, world: World, client):
    if case.api:
        http = api_client_for(world.a.user)
        send = partial(getattr(http, case.method), format="json")
    else:
        client.force_login(world.a.user)
        send = getattr(client, case.method)
    url, data = case.url(world), case.payload(world)
    before = _snapshot()
    response = send(url, data)
    body = _body(response)
    assert response.status_code == case.status, (url, body[:500])
    _assert_no_b_markers(world, url, body)
    assert _snapshot() == before


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
    patterns = [*api_urls.urlpatterns, *customfield_api_urls.urlpatterns]
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
