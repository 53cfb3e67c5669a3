"""A prototype, for bench/realtime.py only: ``api_item_send`` with the same steps, rules and
records as ``deliveries.api_runs``, in fewer and cheaper statements. Not the platform's code:
it shows what the changes proposed in docs/PERFORMANCE.md would give.

- The item and the few live columns of its delivery in one small SELECT (raw SQL); the
  ``Delivery`` object itself cached per process by (id, ``updated_at``), its pause and health
  columns always taken from that SELECT (the platform loads the 70-column delivery and its
  client through the ORM for every send);
- the claim ``UPDATE ... RETURNING`` what the send needs of the item (no second read);
  the same order as the platform's: claim, read, build, then the endpoint's budget around the
  request only (a spent budget puts the item back, due 0.5 s later, for the tick);
- the referral as one row of exactly the compiled columns' lookups, by a statement compiled
  once per column list (no model instances, no ORM compilation per send), handed to the
  platform's own ``build_request`` (same body, headers, signature);
- the attempt and the item's new state written by one statement (a CTE) in autocommit: one
  round trip and one commit instead of BEGIN, INSERT, UPDATE, COMMIT.

Installed by ``install()`` (the bench's Celery app calls it when ``BENCH_SLIM=1``).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
from types import SimpleNamespace

from django.db import connection
from django.utils import timezone

_ITEM = """
SELECT i.delivery_id, i.status, i.next_attempt_at, d.updated_at, d.active, d.paused_at,
       d.last_success_at, d.failing_since
FROM deliveries_deliveryitem i JOIN deliveries_delivery d ON d.id = i.delivery_id
WHERE i.id = %s
"""
_CLAIM = """
UPDATE deliveries_deliveryitem SET status = 'sending', lease_until = %s, attempts = attempts + 1
WHERE id = %s AND status IN ('pending', 'failed')
  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
RETURNING referral_id, attempts, created_at
"""
_PUT_BACK = """
UPDATE deliveries_deliveryitem
SET status = %s, attempts = attempts - 1, lease_until = NULL, queued_at = NULL,
    next_attempt_at = %s
WHERE id = %s AND status = 'sending'
"""
_RECORD = """
WITH attempt AS (
    INSERT INTO deliveries_attempt (
        delivery_id, item_id, referral_id, number, test, started_at, method, url,
        request_headers, request_body, status_code, response_headers, response_body,
        latency_ms, error_class, outcome, reason)
    VALUES (%s, %s, %s, %s, FALSE, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
)
UPDATE deliveries_deliveryitem
SET lease_until = NULL, reason = %s, status = %s, delivered_at = COALESCE(%s, delivered_at),
    next_attempt_at = %s
WHERE id = %s
"""

_deliveries: dict[int, tuple[dt.datetime, object]] = {}
_lock = threading.Lock()
_referral_sql: dict[tuple[str, ...], str] = {}


def _delivery(delivery_id: int, updated_at, live: dict):
    from deliveries.models import Delivery

    with _lock:
        cached = _deliveries.get(delivery_id)
    if cached is None or cached[0] != updated_at:
        loaded = Delivery.objects.select_related("client").get(pk=delivery_id)
        with _lock:
            _deliveries[delivery_id] = (loaded.updated_at, loaded)
        cached = (loaded.updated_at, loaded)
    delivery = copy.copy(cached[1])  # the health columns below are this send's own
    for name, value in live.items():
        setattr(delivery, name, value)
    return delivery


def _referral_row(compiled, referral_id: int) -> tuple:
    from referrals.models import Referral

    key = tuple(compiled.lookups)
    sql = _referral_sql.get(key)
    if sql is None:
        query = Referral.objects.filter(pk=-12345).values_list(*compiled.lookups).query
        sql, params = query.sql_with_params()
        assert params == (-12345,), params
        _referral_sql[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, [referral_id])
        return cursor.fetchone()


def api_item_send(item_id: int) -> str:
    from deliveries import api_runs
    from deliveries.api_runs import _BUDGET_WAIT, _OPEN, classify
    from deliveries.budget import budget
    from deliveries.transports import http

    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_ITEM, [item_id])
        row = cursor.fetchone()
    if row is None or row[1] not in _OPEN:
        return "not open"
    delivery_id, status, next_attempt_at, updated_at, active, paused_at, last_ok, failing = row
    if not active or paused_at is not None:
        return "delivery paused"
    if next_attempt_at and next_attempt_at > now:
        return "not due"
    delivery = _delivery(delivery_id, updated_at, {
        "paused_at": paused_at, "last_success_at": last_ok, "failing_since": failing,
    })  # fmt: skip
    lease = now + dt.timedelta(seconds=delivery.connect_timeout + delivery.total_timeout + 5)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [lease, item_id, now])
        claimed = cursor.fetchone()
    if claimed is None:
        return "claimed elsewhere"
    referral_id, attempts, created_at = claimed
    built, unbuilt = api_runs._build(delivery, _referral(delivery, referral_id),
                                     msg_id=f"msg_{item_id}")  # fmt: skip
    if unbuilt is not None:
        response = unbuilt
    else:
        # As the platform does: the endpoint's budget held only around the request.
        token = budget().acquire(
            delivery.pk, delivery.max_in_flight, delivery.connect_timeout + delivery.total_timeout
        )
        if token is None:
            with connection.cursor() as cursor:
                cursor.execute(_PUT_BACK, [status, now + dt.timedelta(seconds=_BUDGET_WAIT),
                                           item_id])  # fmt: skip
            return "waiting for budget"
        try:
            response = http.send(api_runs._http_request(delivery, built),
                                 allowed_networks=api_runs.allowed_networks())  # fmt: skip
        finally:
            budget().release(delivery.pk, token)
    result = classify(delivery, response)
    _record(delivery, item_id, referral_id, attempts, created_at, built, response, result)
    return result.outcome


def _compiled_for(delivery):
    """The compiled columns ``build_request`` uses for ``delivery`` (the same cache)."""
    from deliveries import api_runs
    from deliveries.filewriter import delivery_columns
    from deliveries.payloads import template_placeholders

    if delivery.body_template.strip():
        names = template_placeholders(delivery.body_template)
        return api_runs._compiled(delivery, tuple(names))
    columns = tuple(delivery_columns(delivery))
    return api_runs._compiled(delivery, tuple(c.source for c in columns), columns)


def _referral(delivery, referral_id: int):
    """The referral as ``build_request`` reads it: an object with exactly the attributes the
    compiled columns look up (``client.name`` for ``client__name``), from one row."""
    compiled = _compiled_for(delivery)
    root = SimpleNamespace()
    for lookup, value in zip(compiled.lookups, _referral_row(compiled, referral_id), strict=True):
        *path, last = lookup.split("__")
        node = root
        for part in path:
            if not isinstance(getattr(node, part, None), SimpleNamespace):
                setattr(node, part, SimpleNamespace())
            node = getattr(node, part)
        setattr(node, last, value)
    return root


def build_and_send(delivery, referral, *, msg_id: str):
    """The platform's own request building and sending (``_build_and_send`` where it exists)."""
    from deliveries import api_runs
    from deliveries.transports import http

    if hasattr(api_runs, "_build_and_send"):
        return api_runs._build_and_send(delivery, referral, msg_id=msg_id)
    built = api_runs.build_request(delivery, referral, msg_id=msg_id)
    response = http.send(api_runs._http_request(delivery, built),
                         allowed_networks=api_runs.allowed_networks())  # fmt: skip
    return built, response


def _record(delivery, item_id, referral_id, attempts, created_at, built, response, result):
    from deliveries import api_runs
    from deliveries.http_auth import redact_headers, redact_url

    now = timezone.now()
    reason = result.reason[:2000]
    delivered_at = next_attempt_at = None
    if result.outcome == "delivered":
        status, delivered_at = "delivered", now
    elif result.outcome == "rejected":
        status = "rejected"
    else:
        status = "failed"
        gave_up = now - created_at > api_runs.RETRY_WINDOW
        delay = api_runs.retry_delay(attempts, result.retry_after)
        next_attempt_at = None if gave_up else now + dt.timedelta(seconds=delay)
        if gave_up:
            reason = f"gave up after {api_runs.RETRY_WINDOW.days} days: {result.reason}"
    limit = api_runs._BODY_LOG_LIMIT
    with connection.cursor() as cursor:
        cursor.execute(_RECORD, [
            delivery.pk, item_id, referral_id, attempts, now, built.method,
            redact_url(built.url, secret_params=built.secret_params),
            json.dumps([list(h) for h in redact_headers(
                built.headers, secret_header_names=built.secret_headers)]),
            built.body[:limit].decode("utf-8", errors="replace"), response.status,
            json.dumps([list(h) for h in response.headers]),
            response.body[:limit].decode("utf-8", errors="replace"), response.latency_ms,
            response.error_class, result.outcome, result.reason[:2000],
            reason, status, delivered_at, next_attempt_at, item_id,
        ])  # fmt: skip
    api_runs._health(delivery, result, now)


def install() -> None:
    from deliveries import api_runs, tasks

    api_runs.api_item_send = api_item_send
    tasks.api_item_send = api_item_send
