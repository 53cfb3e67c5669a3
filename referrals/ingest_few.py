"""A few referrals stored in one statement: the path of a collector posting one referral a
request (or a handful), on PostgreSQL.

The general path (``referrals.services``) pays six round trips to the database: the clients'
look-up, BEGIN, the known referrals and campaigns, the INSERT, the ledger's INSERT and COMMIT.
Here one statement finds each record's client by slug and campaign by external id, inserts the
referrals whose client does not hold their external id yet, and runs every stored hook's CTE
(``referrals.hooks``: the deliveries' ledger writes its items). One referral needs nothing
more (a statement is atomic by itself); several share a transaction, rolled back unless every
one was stored. Whatever the statement leaves (a client or campaign it does not find, a
duplicate) goes, whole request, to the general path: it says why, or creates the campaign.

Each value is cast to its column's type without a length: a value too long fails as it would
in a plain INSERT instead of being cut. (Passed as one array per column instead, for one
statement whatever the count, psycopg's dumping of the arrays cost more than the statement.)
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from django.db import IntegrityError, OperationalError, connection, transaction

from referrals.hooks import StoredHook, stored_hooks
from referrals.models import Referral
from rokt_platform.prepared import prepared_cursor

# More records than this take the general path (COPY from 11 on: ``referrals_insert``).
AT_ONCE_AT_MOST = 10


class Record(Protocol):
    """A validated ingestion record (``referrals.services._Valid``)."""

    client_slug: str
    campaign_external_id: str
    fields: dict[str, Any]


class _NotAll(Exception):
    """Some record could not be stored at once: roll back, the general path takes them."""


def store_at_once_applies(records: Sequence[Record]) -> bool:
    """On PostgreSQL only (SQLite has no INSERT inside a WITH), not inside a caller's
    transaction (a failed statement would leave it unusable for the general path), for a few
    records of distinct (client, external id): a repeat within the request is the general
    path's to report as a duplicate of the first."""
    keys = {(r.client_slug, r.fields["external_id"]) for r in records}
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and 0 < len(records) <= AT_ONCE_AT_MOST
        and len(keys) == len(records)
    )


def referrals_store_at_once(records: Sequence[Record]) -> list[int] | None:
    """Store every record and its ledger items, or none of them; their ids in order, or None
    when nothing was stored (a client or campaign not found, a duplicate, or a conflict with a
    concurrent writer: the general path reruns it)."""
    try:
        if len(records) == 1:
            return _store(records)
        with transaction.atomic():
            return _store(records)
    except _NotAll:
        return None
    except (IntegrityError, OperationalError) as exc:
        if not is_conflict(exc):
            raise
        return None


# PostgreSQL's deadlock_detected and serialization_failure: the transaction may simply be rerun.
_RETRYABLE_SQLSTATES = {"40P01", "40001"}


def is_conflict(exc: Exception) -> bool:
    """Whether ``exc`` came of a concurrent writer (a unique key taken meanwhile, a deadlock):
    the transaction, rerun, sees what that writer did."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _store(records: Sequence[Record]) -> list[int] | None:
    fields = _stored_fields()
    hooks = stored_hooks()
    params: list = []
    for record in records:
        referral = Referral(client_id=0, campaign_id=0, **record.fields)  # the defaults filled
        params += [record.client_slug, record.campaign_external_id,
                   *referral_values(referral, fields)]  # fmt: skip
    for hook in hooks:
        params += hook.cte_params()
    with prepared_cursor() as cursor:
        cursor.execute(_statement(len(records), hooks), params)
        rows = cursor.fetchall()
    ids = {position: pk for kind, position, pk, _ in rows if kind == "referral"}
    if len(ids) < len(records):
        if len(records) > 1:
            raise _NotAll  # inside its transaction: undone
        return None  # one record: nothing was stored
    for number, hook in enumerate(hooks):
        kind = f"hook{number}"
        hook.cte_rows([row[1:] for row in rows if row[0] == kind])
    return [ids[position] for position in range(1, len(records) + 1)]


@functools.cache
def _stored_fields() -> tuple:
    return tuple(
        f for f in Referral._meta.concrete_fields
        if not f.primary_key and f.attname not in ("client_id", "campaign_id")
    )  # fmt: skip


@functools.cache
def _statement(count: int, hooks: tuple[StoredHook, ...]) -> str:
    """The statement for ``count`` records (one prepared per count): the referrals' INSERT
    (``r``), each hook's CTE after it, and their rows, each tagged with whose it is."""
    fields = _stored_fields()
    quote = connection.ops.quote_name
    names = [quote(f.column) for f in fields]
    # Typed without length (``varchar(100)`` as ``varchar``): an explicit cast would cut.
    casts = ", ".join(f"CAST(%s AS {_base_type(f)})" for f in fields)
    rows = ",\n    ".join(
        f"({position}, CAST(%s AS text), CAST(%s AS text), {casts})"
        for position in range(1, count + 1)
    )
    hook_ctes = "".join(f", hook{n} AS ({hook.cte})" for n, hook in enumerate(hooks))
    hook_rows = "".join(f"UNION ALL\nSELECT 'hook{n}', hook{n}.* FROM hook{n}\n"
                        for n in range(len(hooks)))  # fmt: skip
    return f"""
WITH v (position, client_slug, campaign_external_id, {", ".join(names)}) AS (VALUES
    {rows}
), c AS MATERIALIZED (
    SELECT cl.id AS client_id, cp.id AS campaign_id, v.*
    FROM v
    JOIN referrals_client cl ON cl.slug = v.client_slug
    JOIN referrals_campaign cp ON cp.client_id = cl.id AND cp.external_id = v.campaign_external_id
), r AS (
    INSERT INTO referrals_referral (client_id, campaign_id, {", ".join(names)})
    SELECT client_id, campaign_id, {", ".join(names)} FROM c
    ORDER BY client_id, external_id  -- one lock order with the general path's
    ON CONFLICT DO NOTHING
    RETURNING id, client_id, campaign_id, created_at, external_id
){hook_ctes}
SELECT 'referral', c.position, r.id, NULL
FROM r JOIN c ON c.client_id = r.client_id AND c.external_id = r.external_id
{hook_rows}"""  # noqa: S608 (model and column names, the hooks' constant SQL)


def _base_type(field) -> str:
    return re.sub(r"\(.*\)", "", field.db_type(connection)).strip()


def referral_values(referral: Referral, fields: Sequence) -> list:
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
