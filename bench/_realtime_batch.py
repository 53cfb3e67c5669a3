"""A prototype, for bench/realtime.py only: real-time items sent in batches when a transaction
stores many referrals at once. Not the platform's code: it shows what the batching proposed in
docs/PERFORMANCE.md would give.

- On commit, the items of one transaction are queued as one message per ``CHUNK`` items
  (``enqueue``, in place of ``api_items_enqueue``); a single item still goes alone, through
  the slim send of ``_realtime_slim`` (no batching delay for the paced, one-a-call traffic).
- ``send_batch`` (a task on ``deliveries_api``) reads the chunk's items and their deliveries
  in one SELECT; per delivery it takes ONE budget token (the chunk's requests go one after
  another on one kept-alive connection, so the endpoint never has more than
  ``max_in_flight`` requests at once), waiting for it up to ``BUDGET_PATIENCE`` in its thread,
  else leaving that part to the tick (due 0.5 s later, as the platform does); claims them in one
  ``UPDATE ... RETURNING``, reads their referrals in one SELECT, builds and sends each with the
  platform's own ``build_request`` and transport, and records every attempt and item state
  with the slim send's statement, all in one pipelined ``executemany`` and one commit.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from types import SimpleNamespace

from django.db import connection, transaction
from django.utils import timezone

CHUNK = 50
# A chunk holds its token for tens of milliseconds: one that finds the budget spent waits in
# its thread for one, this long at most, before it leaves its items to the tick.
BUDGET_PATIENCE = 2.0

_ITEMS = """
SELECT i.id, i.delivery_id, d.updated_at, d.last_success_at, d.failing_since
FROM deliveries_deliveryitem i JOIN deliveries_delivery d ON d.id = i.delivery_id
WHERE i.id = ANY(%s) AND i.status IN ('pending', 'failed') AND d.active
  AND d.paused_at IS NULL AND (i.next_attempt_at IS NULL OR i.next_attempt_at <= %s)
"""
_DEFER = """
UPDATE deliveries_deliveryitem SET next_attempt_at = %s, queued_at = NULL
WHERE id = ANY(%s) AND status IN ('pending', 'failed')
"""
_CLAIM = """
UPDATE deliveries_deliveryitem SET status = 'sending', lease_until = %s, attempts = attempts + 1
WHERE id = ANY(%s) AND status IN ('pending', 'failed')
  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
RETURNING id, referral_id, attempts, created_at
"""


def enqueue(item_ids: list[int], *, delay: float | None = None) -> None:
    """In place of ``api_runs.api_items_enqueue``: chunks of a transaction's items."""
    from _realtime_celery import send_batch

    from deliveries.tasks import send_api_item

    if delay or len(item_ids) == 1:
        for item_id in item_ids:
            if delay:
                send_api_item.apply_async((item_id,), countdown=delay)
            else:
                send_api_item.delay(item_id)
        return
    for start in range(0, len(item_ids), CHUNK):
        send_batch.delay(item_ids[start : start + CHUNK])


def send_batch(item_ids: list[int]) -> dict[str, int]:
    from _realtime_slim import _RECORD, _delivery, build_and_send

    from deliveries import api_runs
    from deliveries.api_runs import _BUDGET_WAIT, classify
    from deliveries.budget import budget
    from deliveries.http_auth import redact_headers, redact_url

    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_ITEMS, [item_ids, now])
        rows = cursor.fetchall()
    groups: dict[int, list[int]] = defaultdict(list)
    live = {}
    for item_id, delivery_id, updated_at, last_ok, failing in rows:
        groups[delivery_id].append(item_id)
        live[delivery_id] = (updated_at, last_ok, failing)
    outcomes: dict[str, int] = defaultdict(int)
    for delivery_id, ids in groups.items():
        updated_at, last_ok, failing = live[delivery_id]
        delivery = _delivery(delivery_id, updated_at, {
            "paused_at": None, "last_success_at": last_ok, "failing_since": failing,
        })  # fmt: skip
        hold = delivery.connect_timeout + delivery.total_timeout
        token = _token(budget(), delivery, hold * len(ids))
        if token is None:
            # Still spent: the chunk waits in the database, due a moment later, for the tick.
            with connection.cursor() as cursor:
                cursor.execute(_DEFER, [now + dt.timedelta(seconds=_BUDGET_WAIT), ids])
            outcomes["waiting for budget"] += len(ids)
            continue
        records = []
        try:
            lease = now + dt.timedelta(seconds=hold * len(ids) + 5)
            with connection.cursor() as cursor:
                cursor.execute(_CLAIM, [lease, ids, now])
                claimed = cursor.fetchall()
            referrals = _referrals(delivery, [row[1] for row in claimed])
            for item_id, referral_id, attempts, created_at in claimed:
                built, response = build_and_send(
                    delivery, referrals[referral_id], msg_id=f"msg_{item_id}"
                )
                result = classify(delivery, response)
                records.append((item_id, referral_id, attempts, created_at, built, response,
                                result))  # fmt: skip
                outcomes[result.outcome] += 1
        finally:
            budget().release(delivery.pk, token)
        rows = []
        done = timezone.now()
        limit = api_runs._BODY_LOG_LIMIT
        for item_id, referral_id, attempts, created_at, built, response, result in records:
            reason = result.reason[:2000]
            delivered_at = next_attempt_at = None
            if result.outcome == "delivered":
                status, delivered_at = "delivered", done
            elif result.outcome == "rejected":
                status = "rejected"
            else:
                status = "failed"
                gave_up = done - created_at > api_runs.RETRY_WINDOW
                delay = api_runs.retry_delay(attempts, result.retry_after)
                next_attempt_at = None if gave_up else done + dt.timedelta(seconds=delay)
                if gave_up:
                    reason = f"gave up after {api_runs.RETRY_WINDOW.days} days: {result.reason}"
            rows.append([
                delivery.pk, item_id, referral_id, attempts, done, built.method,
                redact_url(built.url, secret_params=built.secret_params),
                json.dumps([list(h) for h in redact_headers(
                    built.headers, secret_header_names=built.secret_headers)]),
                built.body[:limit].decode("utf-8", errors="replace"), response.status,
                json.dumps([list(h) for h in response.headers]),
                response.body[:limit].decode("utf-8", errors="replace"), response.latency_ms,
                response.error_class, result.outcome, result.reason[:2000],
                reason, status, delivered_at, next_attempt_at, item_id,
            ])  # fmt: skip
        if rows:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(_RECORD, rows)
            for *_, result in records:
                api_runs._health(delivery, result, done)
    return dict(outcomes)


def _token(budget, delivery, hold: float) -> str | None:
    import time

    deadline = time.monotonic() + BUDGET_PATIENCE
    while True:
        token = budget.acquire(delivery.pk, delivery.max_in_flight, hold)
        if token is not None or time.monotonic() > deadline:
            return token
        time.sleep(0.01)


def _referrals(delivery, referral_ids: list[int]) -> dict[int, SimpleNamespace]:
    """The referrals as ``build_request`` reads them (see ``_realtime_slim._referral``), in
    one SELECT of the compiled columns' lookups."""
    from _realtime_slim import _compiled_for

    from referrals.models import Referral

    compiled = _compiled_for(delivery)
    found = {}
    rows = Referral.objects.filter(pk__in=referral_ids).values_list("pk", *compiled.lookups)
    for pk, *values in rows:
        root = SimpleNamespace()
        for lookup, value in zip(compiled.lookups, values, strict=True):
            *path, last = lookup.split("__")
            node = root
            for part in path:
                if not isinstance(getattr(node, part, None), SimpleNamespace):
                    setattr(node, part, SimpleNamespace())
                node = getattr(node, part)
            setattr(node, last, value)
        found[pk] = root
    return found
