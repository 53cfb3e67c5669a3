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
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import re2
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from customfields.engine import Column, compile_columns
from deliveries.alerts import delivery_failed, delivery_succeeded
from deliveries.budget import budget
from deliveries.filewriter import delivery_columns
from deliveries.http_auth import auth_apply, redact_headers, redact_url
from deliveries.models import Attempt, Delivery, DeliveryItem
from deliveries.outcomes import Outcome, classify
from deliveries.pausing import delivery_pause
from deliveries.payloads import payload_from_columns, payload_from_template, template_placeholders
from deliveries.signing import webhook_headers
from deliveries.transports import http
from referrals.models import Referral

logger = logging.getLogger(__name__)

# About 5 s, 30 s, 2 min, 10 min, then doubling (jitter +-20%) up to 6 h between attempts;
# an item keeps being retried for RETRY_WINDOW, then waits for a replay.
_FIRST_DELAYS = [5, 30, 120, 600]
_MAX_DELAY = 6 * 3600
RETRY_WINDOW = dt.timedelta(days=3)
# A send that finds its endpoint's budget spent is due again this soon (sent by the tick).
_BUDGET_WAIT = 0.5
# Health columns are written at most this often on success (one hot row otherwise).
_SUCCESS_STAMP_EVERY = dt.timedelta(seconds=5)
_BODY_LOG_LIMIT = 64 * 1024
_OPEN = (DeliveryItem.Status.PENDING, DeliveryItem.Status.FAILED)


@dataclass(frozen=True)
class Built:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    secret_headers: set[str]
    secret_params: set[str]


def api_items_enqueue(item_ids: list[int]) -> None:
    from deliveries.tasks import send_api_item

    for item_id in item_ids:
        send_api_item.delay(item_id)


def api_item_send(item_id: int) -> str:
    """Attempt one item if it is due and its endpoint has room; the outcome, or why not."""
    now = timezone.now()
    item = (
        DeliveryItem.objects.select_related("delivery", "delivery__client")
        .filter(pk=item_id)
        .first()
    )
    if item is None or item.status not in _OPEN:
        return "not open"
    delivery = item.delivery
    if not delivery.active or delivery.paused:
        return "delivery paused"
    if item.next_attempt_at and item.next_attempt_at > now:
        return "not due"
    if not budget().room(delivery.pk, delivery.max_in_flight):
        # Behind a slow endpoint: leave the item unclaimed, due a moment later, before any
        # work is spent on it.
        _defer(item)
        return "waiting for budget"
    # Longer than any request can take: past it, the worker died and the item goes again.
    lease = now + dt.timedelta(seconds=delivery.connect_timeout + delivery.total_timeout + 5)
    claimed = DeliveryItem.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=item_id,
        status__in=_OPEN,
    ).update(status=DeliveryItem.Status.SENDING, lease_until=lease, attempts=F("attempts") + 1)
    if not claimed:
        return "claimed elsewhere"
    item.attempts += 1
    referral = Referral.objects.select_related("client", "campaign").get(pk=item.referral_id)
    built, unbuilt = _build(delivery, referral, msg_id=f"msg_{item.pk}")
    if unbuilt is not None:
        response = unbuilt
    else:
        # The endpoint's budget is held only around the request itself.
        token = budget().acquire(
            delivery.pk, delivery.max_in_flight, delivery.connect_timeout + delivery.total_timeout
        )
        if token is None:
            _put_back(item)
            return "waiting for budget"
        try:
            response = http.send(
                _http_request(delivery, built), allowed_networks=allowed_networks()
            )
        finally:
            budget().release(delivery.pk, token)
    result = classify(delivery, response)
    _record(delivery, item, built, response, result)
    return result.outcome


def _defer(item: DeliveryItem) -> None:
    DeliveryItem.objects.filter(pk=item.pk, status__in=_OPEN).update(
        queued_at=None, next_attempt_at=timezone.now() + dt.timedelta(seconds=_BUDGET_WAIT)
    )


def _put_back(item: DeliveryItem) -> None:
    """The endpoint has all the requests it may have: undo the claim and leave the item in the
    database, due a moment later, for the tick; the thread goes to another endpoint's work
    (never a broker message with a countdown, which a slow endpoint would keep polling)."""
    DeliveryItem.objects.filter(pk=item.pk, status=DeliveryItem.Status.SENDING).update(
        status=item.status, attempts=F("attempts") - 1, lease_until=None, queued_at=None,
        next_attempt_at=timezone.now() + dt.timedelta(seconds=_BUDGET_WAIT),
    )  # fmt: skip


def api_test_send(delivery: Delivery) -> Attempt:
    """Send the client's latest referral (or a sample) as live delivery would: same request,
    same rules, same SSRF guard; recorded as a test attempt, nothing else changes."""
    referral = (
        Referral.objects.filter(client=delivery.client).select_related("client", "campaign")
        .order_by("-created_at").first()
    )  # fmt: skip
    if referral is None:
        from customfields.preview import sample_referral

        referral = sample_referral(delivery.client, {
            "external_id": "test-referral", "email": "test.referral@example.com",
            "first_name": "Test", "last_name": "Referral", "gender": "F", "country": "GB",
        })  # fmt: skip
    built, response = _build_and_send(
        delivery, referral, msg_id=f"msg_test_{delivery.pk}_{int(time.time())}"
    )
    result = classify(delivery, response)
    return _attempt(delivery, None, built, response, result, number=1, test=True)


def _build(delivery: Delivery, referral, *, msg_id: str):
    """The request, or (a request that cannot be built: a setting saved before a check
    existed, say) an answer saying so, recorded like any failure, never an exception that
    would leave the item claimed. No message repeats the URL or a header: they may hold keys."""
    try:
        return build_request(delivery, referral, msg_id=msg_id), None
    except Exception as exc:
        logger.error("delivery %s: the request could not be built (%s)", delivery.pk,
                     type(exc).__name__)  # fmt: skip
        unbuilt = Built(delivery.http_method, "(not built)", [], b"", set(), set())
        return unbuilt, http.HttpResponse(
            None, [], b"", 0.0, "build", f"the request could not be built: {type(exc).__name__}"
        )


def _build_and_send(delivery: Delivery, referral, *, msg_id: str):
    built, unbuilt = _build(delivery, referral, msg_id=msg_id)
    if unbuilt is not None:
        return built, unbuilt
    return built, http.send(_http_request(delivery, built), allowed_networks=allowed_networks())


# Custom headers whose name says they carry a credential are redacted in the attempt log, as
# the auth headers are: client users read that log.
_SECRET_HEADER = re2.compile(r"(?i)(key|token|secret|auth|pass|session|cookie|credential)")


def build_request(delivery: Delivery, referral, *, msg_id: str) -> Built:
    """The exact request for ``referral``: body from the column list or the template, the
    delivery's headers and auth, Standard Webhooks signature headers."""
    if delivery.body_template.strip():
        names = template_placeholders(delivery.body_template)
        compiled = _compiled(delivery, tuple(names))
        values = dict(zip(names, compiled.render_referral(referral), strict=True))
        payload = payload_from_template(delivery.body_format, delivery.body_template, values)
    else:
        columns = tuple(delivery_columns(delivery))
        compiled = _compiled(delivery, tuple(c.source for c in columns), columns)
        pairs = list(zip(compiled.headers, compiled.render_referral(referral), strict=True))
        payload = payload_from_columns(delivery.body_format, pairs)
    auth_headers, auth_params = auth_apply(
        delivery.auth_kind, username=delivery.auth_username, secret=delivery.auth_secret,
        key_name=delivery.auth_key_name,
    )  # fmt: skip
    url = _with_query(delivery.url, payload.query, auth_params)
    headers = [(h["name"], h["value"]) for h in delivery.headers]
    if payload.content_type:
        headers.append(("Content-Type", payload.content_type))
    headers += auth_headers
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


def _compiled(delivery: Delivery, names: tuple[str, ...], columns=None):
    key = (delivery.pk, delivery.updated_at, names)
    cached = _compile_cache.get(key)
    if cached and time.monotonic() - cached[0] < _COMPILE_TTL:
        return cached[1]
    columns = columns or tuple(Column(name, name) for name in names)
    compiled = compile_columns(client=delivery.client, columns=list(columns))
    if len(_compile_cache) > 1000:
        _compile_cache.clear()
    _compile_cache[key] = (time.monotonic(), compiled)
    return compiled


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


def _record(delivery: Delivery, item: DeliveryItem, built: Built, response, result: Outcome):
    now = timezone.now()
    with transaction.atomic():
        _attempt(delivery, item, built, response, result, number=item.attempts, test=False)
        fields = {"lease_until": None, "reason": result.reason[:2000]}
        if result.outcome == "delivered":
            fields.update(status=DeliveryItem.Status.DELIVERED, delivered_at=now,
                          next_attempt_at=None)  # fmt: skip
        elif result.outcome == "rejected":
            fields.update(status=DeliveryItem.Status.REJECTED, next_attempt_at=None)
        else:
            gave_up = now - item.created_at > RETRY_WINDOW
            delay = retry_delay(item.attempts, result.retry_after)
            fields.update(
                status=DeliveryItem.Status.FAILED,
                next_attempt_at=None if gave_up else now + dt.timedelta(seconds=delay),
            )
            if gave_up:
                fields["reason"] = f"gave up after {RETRY_WINDOW.days} days: {result.reason}"
        DeliveryItem.objects.filter(pk=item.pk).update(**fields)
    _health(delivery, result, now)


def _health(delivery: Delivery, result: Outcome, now: dt.datetime) -> None:
    if result.pause:
        delivery_pause(delivery, result.pause)
        delivery_failed(delivery, result.reason, permanent=True)
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


def _attempt(delivery, item, built: Built, response, result: Outcome, *, number, test) -> Attempt:
    return Attempt.objects.create(
        delivery=delivery, item=item, referral_id=item.referral_id if item else None,
        number=number, test=test, method=built.method,
        url=redact_url(built.url, secret_params=built.secret_params),
        request_headers=[list(h) for h in redact_headers(
            built.headers, secret_header_names=built.secret_headers)],
        request_body=built.body[:_BODY_LOG_LIMIT].decode("utf-8", errors="replace"),
        status_code=response.status, response_headers=[list(h) for h in response.headers],
        response_body=response.body[:_BODY_LOG_LIMIT].decode("utf-8", errors="replace"),
        latency_ms=response.latency_ms, error_class=response.error_class,
        outcome=result.outcome, reason=result.reason[:2000],
    )  # fmt: skip
