"""Which requests the access log records, and how each one says whose data it showed.

A request is logged when its URL name is in ``OPERATIONS`` and its method is the
operation's: everything else (ingestion's POST on the same URL as the API list included) costs
one dict lookup. The URL names are the lower apps' own (admin views, DRF routers), so none of
them knows it is logged (docs/ARCHITECTURE.md, hooks).

What an answer showed is read from what the view already loaded: the admin's context
(``original``, ``cl.result_list``) and the objects behind a DRF answer (``ReturnDict`` and
``ReturnList`` keep their serializer, whose ``instance`` is the referral or the page). So a
successful request costs no read. A refused one (403, 404) showed nothing; for it one indexed
read finds whose object was asked for, so that probing another client's ids shows under that
client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpResponse

from deliveries.models import Attempt, Delivery
from privacy.models import AccessLogEntry
from referrals.admin_tenancy import id_from_param
from referrals.models import Referral

ADMIN, API = AccessLogEntry.Kind.ADMIN, AccessLogEntry.Kind.API
GET, POST = frozenset({"GET"}), frozenset({"POST"})


@dataclass
class Seen:
    """Whose data an answer showed: client id -> name (``None``: not at hand, looked up once
    for the whole request), the one referral of a detail page, how many rows."""

    clients: dict[int, str | None] = field(default_factory=dict)
    referral_id: int | None = None
    rows: int = 0


@dataclass(frozen=True)
class Operation:
    kind: str
    name: str  # the admin page, or the API's operationId in the OpenAPI schema
    methods: frozenset[str]
    shown: Callable[[HttpResponse], Seen]  # a 2xx answer: what it showed
    asked: Callable[[dict[str, Any]], Seen]  # a refusal: whose object the URL named


# --- What one object is: its client (and name when loaded) and its referral ---------------


def _referral(obj: Referral) -> tuple[int, str | None, int | None]:
    name = obj.client.name if Referral.client.is_cached(obj) else None
    return obj.client_id, name, obj.pk


def _attempt(obj: Attempt) -> tuple[int, str | None, int | None]:
    # The attempts of a delivery's own page (its related manager) hold that delivery, which
    # the view loaded with its client; the admin's page loaded it to show it.
    delivery = obj.delivery
    name = delivery.client.name if Delivery.client.is_cached(delivery) else None
    return delivery.client_id, name, obj.referral_id


Describe = Callable[[Any], tuple[int, str | None, int | None]]


def _one(describe: Describe, obj: Any) -> Seen:
    if obj is None:
        return Seen()
    client_id, name, referral_id = describe(obj)
    return Seen({client_id: name}, referral_id=referral_id, rows=1)


def _many(describe: Describe, objects: list[Any]) -> Seen:
    seen = Seen(rows=len(objects))
    for obj in objects:
        client_id, name, _ = describe(obj)
        if seen.clients.get(client_id) is None:
            seen.clients[client_id] = name
    return seen


# --- Successful answers ---------------------------------------------------------------------


def _admin_object(key: str, describe: Describe) -> Callable[[HttpResponse], Seen]:
    def shown(response: HttpResponse) -> Seen:
        return _one(describe, (getattr(response, "context_data", None) or {}).get(key))

    return shown


def _admin_list(describe: Describe) -> Callable[[HttpResponse], Seen]:
    def shown(response: HttpResponse) -> Seen:
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        return _many(describe, list(changelist.result_list) if changelist else [])

    return shown


def _api_object(describe: Describe) -> Callable[[HttpResponse], Seen]:
    def shown(response: HttpResponse) -> Seen:
        serializer = getattr(getattr(response, "data", None), "serializer", None)
        return _one(describe, getattr(serializer, "instance", None))

    return shown


def _api_page(describe: Describe) -> Callable[[HttpResponse], Seen]:
    def shown(response: HttpResponse) -> Seen:
        data = getattr(response, "data", None)
        results = data.get("results") if isinstance(data, dict) else data
        serializer = getattr(results, "serializer", None)
        return _many(describe, list(getattr(serializer, "instance", None) or []))

    return shown


def _preview(response: HttpResponse) -> Seen:
    """A custom field's preview renders the client's latest referrals (their ids, external
    ids and the field's value): one client, looked up by its first referral."""
    data = getattr(response, "data", None)
    if data is None:  # the admin's preview answers a JsonResponse
        data = json.loads(response.content)
    ids = [row["referral_id"] for row in data.get("latest", [])]
    if not ids:
        return Seen()
    seen = _referral_asked("pk")({"pk": ids[0]})
    return Seen(seen.clients, rows=len(ids))


# --- Refused requests: whose object the URL named (one indexed read) -----------------------


def _nothing(kwargs: dict[str, Any]) -> Seen:
    return Seen()


def _referral_asked(kwarg: str) -> Callable[[dict[str, Any]], Seen]:
    def asked(kwargs: dict[str, Any]) -> Seen:
        pk = id_from_param(kwargs.get(kwarg, ""))
        if pk is None:
            return Seen()
        owner = Referral.objects.filter(pk=pk).values_list("client_id", "client__name").first()
        return Seen(dict([owner]) if owner else {}, referral_id=pk)

    return asked


def _attempt_asked(kwargs: dict[str, Any]) -> Seen:
    pk = id_from_param(kwargs.get("object_id", ""))
    found = (
        Attempt.objects.filter(pk=pk)
        .values_list("delivery__client_id", "delivery__client__name", "referral_id")
        .first()
        if pk is not None
        else None
    )
    return Seen({found[0]: found[1]}, referral_id=found[2]) if found else Seen()


def _delivery_asked(kwargs: dict[str, Any]) -> Seen:
    pk = id_from_param(kwargs.get("pk", ""))
    found = (
        Delivery.objects.filter(pk=pk).values_list("client_id", "client__name").first()
        if pk is not None
        else None
    )
    return Seen(dict([found])) if found else Seen()


# Keyed by URL name (``request.resolver_match.view_name``).
OPERATIONS: dict[str, Operation] = {
    "admin:referrals_referral_change": Operation(
        ADMIN, "referral page", GET, _admin_object("original", _referral),
        _referral_asked("object_id"),
    ),
    # Its title names the referral by its email (Referral.__str__).
    "admin:referrals_referral_history": Operation(
        ADMIN, "referral history page", GET, _admin_object("object", _referral),
        _referral_asked("object_id"),
    ),
    "admin:referrals_referral_changelist": Operation(
        ADMIN, "referral list", GET, _admin_list(_referral), _nothing
    ),
    # The request body sent holds the referral's data.
    "admin:deliveries_attempt_change": Operation(
        ADMIN, "delivery attempt page", GET, _admin_object("original", _attempt), _attempt_asked
    ),
    "admin:customfields_customfield_preview": Operation(
        ADMIN, "custom field preview", POST, _preview, _nothing
    ),
    "referral-list": Operation(API, "v1_referrals_list", GET, _api_page(_referral), _nothing),
    "referral-detail": Operation(
        API, "v1_referrals_retrieve", GET, _api_object(_referral), _referral_asked("pk")
    ),
    "delivery-attempts": Operation(
        API, "v1_deliveries_attempts_list", GET, _api_page(_attempt), _delivery_asked
    ),
    "customfield-preview": Operation(
        API, "v1_custom_fields_preview_create", POST, _preview, _nothing
    ),
}  # fmt: skip
