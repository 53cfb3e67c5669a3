"""One referral stored in one statement: the path of a collector posting one referral a request,
on PostgreSQL.

The general path (``referrals.services``) pays six round trips to the database for one
referral: the client's look-up, BEGIN, the known referrals and campaigns, the INSERT, the
ledger's INSERT and COMMIT. Here a single statement, atomic by itself, finds the client by
slug and the campaign by external id, inserts the referral unless the client already holds
its external id, and writes the ledger's items (``deliveries.ledger.LEDGER_INSERT``) in the
same transaction. When it stores nothing (a client or campaign it does not find, a duplicate)
the general path takes the record: it says why, or creates the campaign.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.db import connection
from django.utils import timezone

from deliveries.ledger import LEDGER_INSERT, ledger_queue
from referrals.models import Referral
from rokt_platform.prepared import prepared_cursor


def store_one_applies() -> bool:
    """Only on PostgreSQL (SQLite has no INSERT inside a WITH), and not inside a caller's
    transaction: there a failed statement would leave that transaction unusable for the
    general path that takes over."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def referral_store_one(
    client_slug: str, campaign_external_id: str, fields: dict[str, Any]
) -> int | None:
    """Store one validated referral and its ledger items; its id, or None if nothing was
    stored (its client or campaign not found, or the client holds its external id already)."""
    referral = Referral(client_id=0, campaign_id=0, **fields)  # the model's defaults filled in
    params = [campaign_external_id, client_slug,
              *referral_values(referral, _stored_fields()), timezone.now()]  # fmt: skip
    with prepared_cursor() as cursor:
        cursor.execute(_statement(), params)
        rows = cursor.fetchall()
    if not rows:
        return None
    ledger_queue(item for item in (row[1:] for row in rows) if item[0] is not None)
    return rows[0][0]


def _stored_fields() -> list:
    return [
        f for f in Referral._meta.concrete_fields
        if not f.primary_key and f.attname not in ("client_id", "campaign_id")
    ]  # fmt: skip


@functools.cache
def _statement() -> str:
    fields = _stored_fields()
    table = connection.ops.quote_name
    columns = ", ".join(["client_id", "campaign_id", *(table(f.column) for f in fields)])
    # Typed: values selected (not VALUES) would reach the columns as text.
    values = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
    return f"""
WITH c AS MATERIALIZED (
    SELECT cl.id AS client_id, cp.id AS campaign_id
    FROM referrals_client cl
    JOIN referrals_campaign cp ON cp.client_id = cl.id AND cp.external_id = %s
    WHERE cl.slug = %s
), r AS (
    INSERT INTO referrals_referral ({columns})
    SELECT c.client_id, c.campaign_id, {values} FROM c
    ON CONFLICT DO NOTHING
    RETURNING id, client_id, campaign_id, created_at
), items AS ({LEDGER_INSERT})
SELECT r.id, items.id, items.delivery_id, items.status FROM r LEFT JOIN items ON true
"""  # noqa: S608 (model and column names only)


def referral_values(referral: Referral, fields: list) -> list:
    """The referral's values of ``fields``, as the database takes them (JSON as its text)."""
    json_fields = _json_attnames()
    return [
        json.dumps(getattr(referral, f.attname), allow_nan=False)
        if f.attname in json_fields
        else getattr(referral, f.attname)
        for f in fields
    ]  # fmt: skip


@functools.cache
def _json_attnames() -> frozenset[str]:
    return frozenset(
        f.attname for f in Referral._meta.concrete_fields if f.get_internal_type() == "JSONField"
    )
