"""Real-time API delivery of one referral: claim the item, build the request exactly as the
CRM wants it, send it under the endpoint's budget and the SSRF guard, record the attempt,
and decide: delivered, rejected, or failed and retried later.

At least once, deduplicable: every attempt of one (referral, delivery) carries the same
``webhook-id``. The item's row is the state machine: an attempt starts only by claiming the
item (pending or failed, and due) in one UPDATE, so two workers never send it at once; the
claim carries a lease, so a worker that dies mid-request leaves an item the retry tick sends
again. Retries are scheduled in the database and fired by beat, never held in the broker.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import re2
from django.conf import settings
from django.utils import timezone

from customfields.engine import Column, compile_columns
from customfields.preview import sample_referral
from deliveries.alerts import delivery_failed, delivery_succeeded
from deliveries.api_due import items_due_of
from deliveries.api_items import (
    Claim,
    ClaimedItem,
    ItemRecord,
    items_claim_and_read,
    items_defer,
    items_extend_lease,
    items_open,
    items_put_back,
    items_record,
    referral_values,
)
from deliveries.budget import budget
from deliveries.configuration import ConfigurationError, configured
from deliveries.delivery_cache import delivery_for_send
from deliveries.filewriter import delivery_columns
from deliveries.http_auth import auth_apply, redact_headers, redact_url
from deliveries.models import Attempt, Delivery, DeliveryItem
from deliveries.outcomes import Outcome, classify
from deliveries.pausing import delivery_pause, delivery_pause_unreadable, delivery_stop
from deliveries.payloads import payload_from_columns, payload_from_template, template_placeholders
from deliveries.secrets import SecretUnreadable
from deliveries.signing import webhook_headers
from deliveries.transports import http
from referrals.models import Referral

logger = logging.getLogger(__name__)

# About 5 s, 30 s, 2 min, 10 min, then doubling (jitter +-20%) up to 6 h between attempts;
# an item keeps being retried for RETRY_WINDOW, then waits for a replay.
_FIRST_DELAYS = [5, 30, 120, 600]
_MAX_DELAY = 6 * 3600
RETRY_WINDOW = dt.timedelta(days=3)
# Health columns are written at most this often on success (one hot row otherwise).
_SUCCESS_STAMP_EVERY = dt.timedelta(seconds=5)
_BODY_LOG_LIMIT = 64 * 1024
# The items of one transaction go out in chunks of this many, one task each.
SEND_CHUNK = 50
_SPREAD = 8
# A chunk stops taking new requests after this long (its lease must cover it, and a worker
# that dies mid-chunk leaves its items for the tick after that lease): the rest go back.
_CHUNK_SECONDS = 5.0
# A chunk's attempts are written together, but never more than this late: a worker killed
# mid-chunk makes the tick resend what it sent and had not recorded, so this bounds the repeats
# a crash can cause (a fast endpoint's whole chunk; a slow one's last request, as a single send).
_RECORD_EVERY = 0.05


@dataclass(frozen=True)
class Built:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    secret_headers: set[str]
    secret_params: set[str]


def api_items_enqueue(by_delivery: Mapping[int, Sequence[int]]) -> None:
    """Queue items for sending, each delivery's apart (a chunk never mixes endpoints: a slow
    one would hold up the other's items behind it). A lone item (one referral a call) goes as
    itself, waiting for no batch; many (a bulk ingestion, a replay, a backlog) in chunks,
    each sent by one task with a handful of statements instead of a task and a handful each.
    Each message names its delivery: the send takes the endpoint's budget before it reads
    anything.
    """
    from deliveries.tasks import send_api_item, send_api_items

    for delivery_id, item_ids in by_delivery.items():
        if len(item_ids) == 1:
            send_api_item.delay(item_ids[0], delivery_id)
            continue
        # A chunk's requests go one after another, and an endpoint may take
        # ``max_in_flight`` at once (8 by default): a few items spread over several chunks.
        size = max(1, min(SEND_CHUNK, math.ceil(len(item_ids) / _SPREAD)))
        for start in range(0, len(item_ids), size):
            send_api_items.delay(list(item_ids[start : start + size]), delivery_id)


def api_item_send(item_id: int, delivery_id: int | None = None) -> str:
    """Attempt one item if it is due and its endpoint has room; the outcome, or why not."""
    return api_items_send([item_id], delivery_id).get(item_id, "not open")


def api_items_send(item_ids: Sequence[int], delivery_id: int | None = None) -> dict[int, str]:
    """Attempt the items that are open and due under their delivery's budget; the outcome of
    each item, or why it was not sent. ``delivery_id`` is the items' delivery (every message
    queued names it); without it, the items' deliveries are looked up, each sent in turn."""
    now = timezone.now()
    if delivery_id is not None:
        return _send_for_delivery(delivery_id, list(item_ids), now)
    by_delivery: dict[int, list[int]] = defaultdict(list)
    for item in items_open(item_ids):
        by_delivery[item.delivery_id].append(item.id)
    outcomes: dict[int, str] = {}
    for one_delivery, ids in by_delivery.items():
        outcomes.update(_send_for_delivery(one_delivery, ids, now))
    return outcomes


def _send_for_delivery(delivery_id: int, ids: list[int], now: dt.datetime) -> dict[int, str]:
    """One delivery's items under one token of its endpoint's budget: their requests go one
    after another on a kept-alive connection, so the endpoint never has more than
    ``max_in_flight`` at once. The token comes first, before anything is read: behind a busy
    endpoint a send costs a Redis call and one UPDATE. While the chunk has time left it goes
    on with the delivery's other due items (sends that found no token left them in the
    database), so a busy endpoint's backlog is worked at the pace of its budget, not of the
    tick."""
    try:
        # The worker's copy (10 s at most); checked against the version the claim reads.
        delivery = delivery_for_send(delivery_id)
    except Delivery.DoesNotExist:
        return {}  # deleted, and its items with it
    except SecretUnreadable as exc:
        delivery_pause_unreadable(delivery_id, exc)
        return dict.fromkeys(ids, "delivery paused")
    lease_seconds = _lease_seconds(delivery)
    token = budget().acquire(delivery.pk, delivery.max_in_flight, lease_seconds)
    if token is None:
        # Behind a busy or slow endpoint: leave the items unclaimed and due, before any work
        # is spent on them, and say so: whoever holds one of the endpoint's tokens takes them
        # before giving it back; else the tick, as slots free up (never while none is: no
        # message is queued only to be put off again).
        items_defer(ids, due=now)
        budget().note_waiting(delivery.pk)
        return dict.fromkeys(ids, "waiting for budget")
    outcomes: dict[int, str] = {}
    # A chunk says there may be a backlog to go on with, as does an item that was put off or
    # retried; a fresh lone referral (the usual one-a-call traffic) saves the look.
    backlog = len(ids) > 1
    held = True
    started = time.monotonic()
    try:
        while True:
            delivery, went_on = _send_under_token(delivery, ids, outcomes, lease_seconds, backlog)
            if not went_on or time.monotonic() - started > _CHUNK_SECONDS:
                break
            # Sends that found no slot meanwhile left their items due: take them now, with
            # this token, rather than leave them for the tick (up to a tick's interval late).
            if not budget().keep_for_waiting(delivery_id, token, lease_seconds):
                held = False  # given back
                break
            ids, backlog = items_due_of(delivery_id, limit=SEND_CHUNK, now=timezone.now()), True
    finally:
        if held:
            budget().release(delivery_id, token)
    return outcomes


def _send_under_token(
    delivery: Delivery, ids: list[int], outcomes: dict[int, str], lease_seconds: float,
    backlog: bool,
) -> tuple[Delivery, bool]:  # fmt: skip
    """Claim and send ``ids``, then, while the chunk's time lasts and there may be a backlog,
    the delivery's other due items. The delivery as last read, and whether the sends ended
    as they should (not stopped by a pause or the chunk's deadline)."""
    deadline = time.monotonic() + _CHUNK_SECONDS
    while ids:
        lease = timezone.now() + dt.timedelta(seconds=lease_seconds)
        lookups = _lookups(delivery)
        claim = items_claim_and_read(
            delivery.pk, ids, lease=lease, now=timezone.now(), lookups=lookups
        )
        if len(claim.items) < len(ids):
            outcomes.update(_why_not_claimed(delivery.pk, ids, claim, timezone.now()))
        if not claim.items:
            break
        claimed = _as_claimed(delivery, claim, lease_seconds)
        if claimed is None:
            outcomes.update(dict.fromkeys((item.id for item in claim.items),
                                          "delivery paused"))  # fmt: skip
            return delivery, False
        delivery = claimed
        if _lookups(delivery) != lookups:  # its body changed meanwhile
            claim = replace(claim, rows=referral_values(
                _lookups(delivery), [item.referral_id for item in claim.items],
            ))  # fmt: skip
        if not _send_claimed(delivery, claim, outcomes, deadline):
            return delivery, False
        backlog = backlog or any(item.due_before for item in claim.items)
        if not backlog or time.monotonic() > deadline:
            break
        ids = items_due_of(delivery.pk, limit=SEND_CHUNK, now=timezone.now())
    return delivery, True


def _lookups(delivery: Delivery) -> tuple[str, ...]:
    """What the claim reads of each referral for the body; nothing when the body cannot be
    compiled: the items are claimed all the same, and the first one's send records why."""
    try:
        return tuple(_body_columns(delivery).lookups)
    except ConfigurationError:
        return ()


def _lease_seconds(delivery: Delivery) -> float:
    # Longer than the chunk may run plus its last request: past it, the worker died (the
    # token frees itself, the tick sends the items again; sooner would repeat a request that
    # is still in flight).
    return _CHUNK_SECONDS + delivery.connect_timeout + delivery.total_timeout + 5


def _as_claimed(delivery: Delivery, claim: Claim, lease_seconds: float) -> Delivery | None:
    """The delivery as of the version the claim read, with its live health columns; ``None``
    (the claimed items put back as they were) if that version cannot be sent with."""
    live = claim.live
    if live.updated_at != delivery.updated_at:  # saved since the worker's copy was taken
        try:
            delivery = delivery_for_send(delivery.pk, live.updated_at)
        except (Delivery.DoesNotExist, SecretUnreadable) as exc:
            _put_back(claim.items, timezone.now(), {}, "delivery paused")
            if isinstance(exc, SecretUnreadable):
                delivery_pause_unreadable(delivery.pk, exc)
            return None
        if _lease_seconds(delivery) > lease_seconds:  # its timeouts grew: a longer lease
            lease = timezone.now() + dt.timedelta(seconds=_lease_seconds(delivery))
            items_extend_lease([item.id for item in claim.items], lease=lease)
    delivery.last_success_at = live.last_success_at
    delivery.failing_since = live.failing_since
    return delivery


def _why_not_claimed(
    delivery_id: int, ids: list[int], claim: Claim, now: dt.datetime
) -> dict[int, str]:
    """Why the claim left some of ``ids`` (rare: a second look, for the outcome only). Items
    no longer open are not named, as before."""
    taken = {item.id for item in claim.items}
    reasons = {}
    for item in items_open([pk for pk in ids if pk not in taken]):
        if item.delivery_id != delivery_id:
            reasons[item.id] = "another delivery's"
        elif not item.delivery_open:
            reasons[item.id] = "delivery paused"
        elif item.next_attempt_at and item.next_attempt_at > now:
            reasons[item.id] = "not due"
        else:
            reasons[item.id] = "claimed elsewhere"
    return reasons


def _send_claimed(delivery: Delivery, claim: Claim, outcomes: dict[int, str],
                  deadline: float) -> bool:  # fmt: skip
    """Send the claimed items one after another and record them; whether all went (not
    stopped by the chunk's deadline or an answer that pauses the delivery)."""
    claimed = claim.items
    records: list[ItemRecord] = []
    results: list[Outcome] = []
    recorded = time.monotonic()
    now = timezone.now()
    try:
        for position, item in enumerate(claimed):
            if position and time.monotonic() > deadline:
                _put_back(claimed[position:], now, outcomes, "chunk ran long")
                return False
            built, response = _send_one(delivery, item, claim.rows.get(item.referral_id))
            result = classify(delivery, response)
            records.append(_item_record(delivery, item, built, response, result))
            results.append(result)
            outcomes[item.id] = result.outcome
            if result.pause:  # 410, a refused target: not one more request to it
                _put_back(claimed[position + 1 :], now, outcomes, "delivery paused")
                return False
            if time.monotonic() - recorded >= _RECORD_EVERY:
                items_record(records)
                records, recorded = [], time.monotonic()
    finally:
        # Whatever happened to the loop, what was sent is recorded.
        items_record(records)
        if results:
            _health(delivery, next((r for r in results if r.pause), results[-1]), now)
    return True


def _send_one(delivery: Delivery, item: ClaimedItem, row) -> tuple[Built, http.HttpResponse]:
    """The request for ``item`` and its answer (or why there is none)."""
    if row is None:  # the referral is gone (its client deleted meanwhile): nothing to build
        return _unbuilt(delivery, LookupError("the referral no longer exists"))
    return _build_and_send(delivery, row=row, msg_id=f"msg_{item.id}")


def _put_back(rest: list[ClaimedItem], now: dt.datetime, outcomes: dict[int, str],
              why: str) -> None:  # fmt: skip
    """Undo the claims of items that got no request, as they were: due now when the chunk
    ran long (another chunk, or the tick, takes them), on resume when the delivery paused."""
    for status in {item.status_before for item in rest}:
        ids = [item.id for item in rest if item.status_before == status]
        items_put_back(ids, status=status, due=now)
    outcomes.update(dict.fromkeys((item.id for item in rest), why))


def api_test_send(delivery: Delivery) -> Attempt:
    """Send the client's latest referral (or a sample) as live delivery would: same request,
    same rules, same SSRF guard; recorded as a test attempt, nothing else changes."""
    referral = (
        Referral.objects.filter(client=delivery.client).select_related("client", "campaign")
        .order_by("-created_at").first()
    )  # fmt: skip
    if referral is None:
        referral = sample_referral(delivery.client, {
            "external_id": "test-referral", "email": "test.referral@example.com",
            "first_name": "Test", "last_name": "Referral", "gender": "F", "country": "GB",
        })  # fmt: skip
    built, response = _build_and_send(
        delivery, referral, msg_id=f"msg_test_{delivery.pk}_{int(time.time())}"
    )
    result = classify(delivery, response)
    # The referral it sent is named, so that erasing that person finds this body too.
    return _test_attempt(delivery, built, response, result, referral_id=referral.pk)


def _unbuilt(delivery: Delivery, exc: Exception,
             built: Built | None = None) -> tuple[Built, http.HttpResponse]:  # fmt: skip
    """A request that cannot be built or sent: an answer saying so, recorded like any failure,
    never an exception that would leave the item claimed. A ``ConfigurationError`` (its
    message names the setting, never a secret) is the ``configuration`` error class, which
    pauses the delivery; anything else is retried. No other message repeats the URL or a
    header: they may hold keys."""
    if isinstance(exc, ConfigurationError):
        error_class, error = "configuration", str(exc)
    else:
        logger.error("delivery %s: the request could not be built (%s)", delivery.pk,
                     type(exc).__name__)  # fmt: skip
        error_class, error = "build", f"the request could not be built: {type(exc).__name__}"
    built = built or Built(delivery.http_method, "(not built)", [], b"", set(), set())
    return built, http.HttpResponse(None, [], b"", 0.0, error_class, error)


def _build_and_send(delivery: Delivery, referral=None, *, msg_id: str, row=None):
    try:
        built = build_request(delivery, referral, msg_id=msg_id, row=row)
    except Exception as exc:
        return _unbuilt(delivery, exc)
    try:
        with configured("the request (its method, address or headers)"):
            return built, http.send(_http_request(delivery, built),
                                    allowed_networks=allowed_networks())  # fmt: skip
    except ConfigurationError as exc:
        return _unbuilt(delivery, exc, built)


# Custom headers whose name says they carry a credential are redacted in the attempt log, as
# the auth headers are: client users read that log.
_SECRET_HEADER = re2.compile(r"(?i)(key|token|secret|auth|pass|session|cookie|credential)")


def build_request(delivery: Delivery, referral=None, *, msg_id: str, row=None) -> Built:
    """The exact request for ``referral`` (or ``row``: the values of the body columns'
    ``lookups``, all a send reads of it): body from the column list or the template, the
    delivery's headers and auth, Standard Webhooks signature headers."""
    compiled = _body_columns(delivery)
    with configured(_body_setting(delivery)):
        values = (
            compiled.render_row(row) if row is not None else compiled.render_referral(referral)
        )
        if delivery.body_template.strip():
            named = dict(zip(compiled.headers, values, strict=True))
            payload = payload_from_template(delivery.body_format, delivery.body_template, named)
        else:
            payload = payload_from_columns(
                delivery.body_format, list(zip(compiled.headers, values, strict=True))
            )
    with configured("the authentication"):
        auth_headers, auth_params = auth_apply(
            delivery.auth_kind, username=delivery.auth_username, secret=delivery.auth_secret,
            key_name=delivery.auth_key_name,
        )  # fmt: skip
    with configured("the address or the custom headers"):
        url = _with_query(delivery.url, payload.query, auth_params)
        headers = [(h["name"], h["value"]) for h in delivery.headers]
    if payload.content_type:
        headers.append(("Content-Type", payload.content_type))
    headers += auth_headers
    with configured("the signing secret"):
        headers += webhook_headers(
            msg_id=msg_id, timestamp=int(time.time()), body=payload.body,
            secrets=signing_secrets(delivery),
        )  # fmt: skip
    headers.append(("User-Agent", "rokt-referral-platform"))
    secret_headers = {name.lower() for name, _ in auth_headers} | {
        h["name"].lower() for h in delivery.headers if _SECRET_HEADER.search(h["name"])
    }
    secret_params = {name for name, _ in auth_params}
    return Built(delivery.http_method, url, headers, payload.body, secret_headers, secret_params)


def signing_secrets(delivery: Delivery) -> list[str]:
    """The current secret, and the previous one while a rotation's overlap lasts."""
    secrets = [delivery.signing_secret] if delivery.signing_secret else []
    if (
        delivery.previous_signing_secret
        and delivery.previous_secret_until
        and delivery.previous_secret_until > timezone.now()
    ):
        secrets.append(delivery.previous_signing_secret)
    return secrets


def allowed_networks():
    import ipaddress

    return [ipaddress.ip_network(n, strict=False) for n in settings.DELIVERY_ALLOWED_NETWORKS]


def retry_delay(attempts: int, retry_after: float | None) -> float:
    if attempts <= len(_FIRST_DELAYS):
        base = _FIRST_DELAYS[attempts - 1]
    else:
        base = min(_FIRST_DELAYS[-1] * 2 ** (attempts - len(_FIRST_DELAYS)), _MAX_DELAY)
    delay = base * random.uniform(0.8, 1.2) * settings.DELIVERY_RETRY_SCALE
    return max(delay, retry_after or 0.0)


_compile_cache: dict[tuple, tuple[float, object]] = {}
_COMPILE_TTL = 10.0  # custom field edits reach running workers within this


def _body_columns(delivery: Delivery):
    """The delivery's body columns, compiled: the template's placeholders (each its own
    output name), else the column list; compiled once per process and delivery version."""
    # Saved settings only (every save changes updated_at); an unsaved delivery (a preview)
    # compiles each time.
    key = (delivery.pk, delivery.updated_at)
    cached = _compile_cache.get(key) if delivery.pk else None
    if cached and time.monotonic() - cached[0] < _COMPILE_TTL:
        return cached[1]
    with configured(_body_setting(delivery)):
        if delivery.body_template.strip():
            names = template_placeholders(delivery.body_template)
            columns = tuple(Column(name, name) for name in names)
        else:
            columns = tuple(delivery_columns(delivery))
        compiled = compile_columns(client=delivery.client, columns=list(columns))
    if len(_compile_cache) > 1000:
        _compile_cache.clear()
    _compile_cache[key] = (time.monotonic(), compiled)
    return compiled


def _body_setting(delivery: Delivery) -> str:
    return "the body template" if delivery.body_template.strip() else "the column list"


def _http_request(delivery: Delivery, built: Built) -> http.HttpRequest:
    return http.HttpRequest(
        method=built.method, url=built.url, headers=built.headers, body=built.body,
        connect_timeout=delivery.connect_timeout, total_timeout=delivery.total_timeout,
    )  # fmt: skip


def _with_query(url: str, query: str, params: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    parts = urlsplit(url)
    extra = [q for q in (parts.query, query, urlencode(params) if params else "") if q]
    return urlunsplit(parts._replace(query="&".join(extra)))


def _item_record(delivery: Delivery, item: ClaimedItem, built: Built, response,
                 result: Outcome) -> ItemRecord:  # fmt: skip
    """The attempt as logged (secrets redacted) and the item's state after it: delivered,
    rejected, or failed and due again after the back-off (or given up after the window)."""
    now = timezone.now()
    reason = result.reason[:2000]
    status, delivered_at, due = result.outcome, None, None
    if result.outcome == "delivered":
        delivered_at = now
    elif result.outcome != "rejected":
        status = DeliveryItem.Status.FAILED
        if now - item.created_at > RETRY_WINDOW:
            reason = f"gave up after {RETRY_WINDOW.days} days: {result.reason}"[:2000]
        else:
            due = now + dt.timedelta(seconds=retry_delay(item.attempts, result.retry_after))
    return ItemRecord(
        item_id=item.id, delivery_id=delivery.pk, referral_id=item.referral_id,
        number=item.attempts, started_at=now, **_attempt_fields(built, response, result),
        item_status=status, item_reason=reason, delivered_at=delivered_at, next_attempt_at=due,
    )  # fmt: skip


def _health(delivery: Delivery, result: Outcome, now: dt.datetime) -> None:
    if result.pause:
        delivery_stop(delivery, result.pause, result.reason)
        return
    if result.outcome == "failed":
        delivery_failed(delivery, result.reason)
        since = delivery.failing_since or now
        if now - since >= dt.timedelta(minutes=delivery.pause_after_minutes):
            delivery_pause(
                delivery, f"failing for {delivery.pause_after_minutes} min: {result.reason}"
            )
        return
    # Delivered or rejected: the endpoint answers. Stamp health rarely, not once per request.
    stale = not delivery.last_success_at or now - delivery.last_success_at > _SUCCESS_STAMP_EVERY
    if delivery.failing_since or stale:
        delivery_succeeded(delivery)


def _attempt_fields(built: Built, response, result: Outcome) -> dict:
    return {
        "method": built.method,
        "url": redact_url(built.url, secret_params=built.secret_params),
        "request_headers": [list(h) for h in redact_headers(
            built.headers, secret_header_names=built.secret_headers)],
        "request_body": built.body[:_BODY_LOG_LIMIT].decode("utf-8", errors="replace"),
        "status_code": response.status,
        "response_headers": [list(h) for h in response.headers],
        "response_body": response.body[:_BODY_LOG_LIMIT].decode("utf-8", errors="replace"),
        "latency_ms": response.latency_ms,
        "error_class": response.error_class,
        "outcome": result.outcome,
        "attempt_reason": result.reason[:2000],
    }  # fmt: skip


def _test_attempt(delivery: Delivery, built: Built, response, result: Outcome, *,
                  referral_id: int | None) -> Attempt:  # fmt: skip
    fields = _attempt_fields(built, response, result)
    fields["reason"] = fields.pop("attempt_reason")
    return Attempt.objects.create(delivery=delivery, number=1, test=True,
                                  referral_id=referral_id, **fields)  # fmt: skip
