"""The demo's webhook inbox: receives what a real-time delivery sends, checks its signature as
the client's receiver would, and keeps it for account managers to look at.

The signature is checked with the platform's own Standard Webhooks code
(``deliveries.signing``) and the delivery's current secrets (the previous one too while a
rotation's overlap lasts), like any receiver's library: the signed text is
``{webhook-id}.{webhook-timestamp}.{body}``, the timestamp must be within five minutes.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from deliveries.api_runs import signing_secrets
from deliveries.models import Delivery
from deliveries.signing import webhook_headers
from demo.models import InboxMessage

# The Standard Webhooks libraries refuse a timestamp further than this from now (replays).
TOLERANCE_SECONDS = 5 * 60
# The inbox is for looking at, not an archive: each delivery keeps its latest messages.
KEEP_PER_DELIVERY = 200
BODY_SHOWN = 64 * 1024
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def inbox_receive(
    *, delivery: Delivery, method: str, headers: Mapping[str, str], body: bytes
) -> InboxMessage:
    """Store one request to the inbox with the verdict on its signature; the inbox answers
    ``200`` for a valid signature and ``401`` otherwise, as a careful receiver would."""
    headers = {name.lower(): value for name, value in headers.items()}
    problem = signature_problem(delivery=delivery, headers=headers, body=body, now=time.time())
    message = InboxMessage.objects.create(
        delivery=delivery, method=method, webhook_id=headers.get("webhook-id", "")[:200],
        headers=headers, body=body[:BODY_SHOWN].decode("utf-8", "replace"),
        signature_valid=not problem, problem=problem, answered=401 if problem else 200,
    )  # fmt: skip
    stale = InboxMessage.objects.filter(delivery=delivery).values_list("pk", flat=True)
    InboxMessage.objects.filter(pk__in=list(stale[KEEP_PER_DELIVERY:])).delete()
    return message


def signature_problem(
    *, delivery: Delivery, headers: Mapping[str, str], body: bytes, now: float
) -> str:
    """Why this request is not signed by ``delivery`` (lower-case ``headers``), or ``""``."""
    msg_id, timestamp, signatures = (headers.get(name, "") for name in _SIGNATURE_HEADERS)
    if not (msg_id and timestamp and signatures):
        return "Not signed: a webhook-id, webhook-timestamp or webhook-signature is missing."
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "The webhook-timestamp is not a number of seconds."
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        return "The webhook-timestamp is more than five minutes from now (a replay?)."
    secrets = signing_secrets(delivery)
    if not secrets:
        return "The delivery has no signing secret to check against."
    try:
        expected = [
            dict(webhook_headers(msg_id=msg_id, timestamp=sent_at, body=body, secrets=[secret]))[
                "webhook-signature"
            ]
            for secret in secrets
        ]
    except ValueError as exc:  # an id or timestamp the specification does not allow
        return str(exc)
    received = signatures.split()
    if any(hmac.compare_digest(e.encode(), r.encode()) for e in expected for r in received):
        return ""
    return "No signature matches the delivery's signing secret."
