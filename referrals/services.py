"""Storing referrals: the one way a referral enters the platform.

``referrals_ingest`` validates each record on its own, resolves clients and campaigns in bulk,
refuses duplicates, and stores every valid record in one transaction, so a request is never
half stored: a record is either stored whole or reported with its reasons.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import IntegrityError, OperationalError, connection, transaction
from psycopg import sql
from rest_framework.exceptions import ValidationError

from referrals.api.serializers import ReferralIngestSerializer
from referrals.hooks import ingested_hooks_run, stored_hooks_run
from referrals.ingest_few import (
    is_conflict,
    referral_values,
    referrals_store_at_once,
    store_at_once_applies,
)
from referrals.ingest_lookups import Known, client_ids, known_ids
from referrals.models import Campaign, Referral
from rokt_platform.prepared import prepared_cursor

Status = Literal["created", "duplicate", "invalid"]
# A concurrent request storing the same external id makes the insert fail (or, against a writer
# that locks rows in another order, deadlock); the whole transaction is retried with a fresh
# duplicate check, a bounded number of times.
_CONFLICT_RETRIES = 3


@dataclass
class RecordOutcome:
    index: int
    status: Status
    id: int | None = None
    external_id: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            result["id"] = self.id
        if self.external_id is not None:
            result["external_id"] = self.external_id
        if self.errors:
            result["errors"] = self.errors
        return result


@dataclass
class _Valid:
    index: int
    client_slug: str
    campaign_external_id: str
    campaign_name: str | None
    fields: dict[str, Any]


def referrals_ingest(*, records: Iterable[Any]) -> list[RecordOutcome]:
    """Store every valid record; report each record's outcome, in input order."""
    started = time.perf_counter()
    reported = _ingest(records)
    ingested_hooks_run([outcome.status for outcome in reported], time.perf_counter() - started)
    return reported


def _ingest(records: Iterable[Any]) -> list[RecordOutcome]:
    outcomes: dict[int, RecordOutcome] = {}
    valid: list[_Valid] = []
    validator = _validator()
    for index, record in enumerate(records):
        checked = _validate(validator, index, record)
        if isinstance(checked, RecordOutcome):
            outcomes[index] = checked
        else:
            valid.append(checked)

    # A few referrals (a collector's usual request holds one): one statement stores them, unless
    # one is a duplicate or names a client or campaign it does not find (the path below says).
    if store_at_once_applies(valid):
        stored = referrals_store_at_once(valid)
        if stored is not None:
            for item, pk in zip(valid, stored, strict=True):
                external_id = item.fields["external_id"]
                outcomes[item.index] = RecordOutcome(
                    index=item.index, status="created", id=pk, external_id=external_id
                )
            return [outcomes[index] for index in sorted(outcomes)]

    clients = client_ids({v.client_slug for v in valid})  # slug -> id
    known = []
    for item in valid:
        if item.client_slug in clients:
            known.append(item)
        else:
            outcomes[item.index] = _invalid(
                item.index, item.fields["external_id"], "client",
                f"Unknown client {item.client_slug!r}.",
            )  # fmt: skip

    for attempt in range(_CONFLICT_RETRIES):
        try:
            outcomes.update(_store(known, clients))
            break
        except (IntegrityError, OperationalError) as exc:
            if attempt == _CONFLICT_RETRIES - 1 or not is_conflict(exc):
                raise
    return [outcomes[index] for index in sorted(outcomes)]


_validators = threading.local()


def _validator() -> ReferralIngestSerializer:
    """One serializer per thread, kept: building a ModelSerializer's fields costs a few
    milliseconds, several times the validation of one record (a collector posting one
    referral a request paid it every time). ``run_validation`` keeps no state on it."""
    validator = getattr(_validators, "serializer", None)
    if validator is None:
        validator = _validators.serializer = ReferralIngestSerializer()
    return validator


def _validate(
    validator: ReferralIngestSerializer, index: int, record: Any
) -> _Valid | RecordOutcome:
    if not isinstance(record, Mapping):
        return _invalid(index, None, "non_field_errors", "Each record must be a JSON object.")
    try:
        data = dict(validator.run_validation(record))
    except ValidationError as exc:
        external_id = record.get("external_id")
        return RecordOutcome(
            index=index,
            status="invalid",
            external_id=external_id if isinstance(external_id, str) else None,
            errors=list(_flatten_errors(exc.detail)),
        )
    return _Valid(
        index=index,
        client_slug=data.pop("client"),
        campaign_external_id=data.pop("campaign"),
        campaign_name=data.pop("campaign_name", None),
        fields=data,
    )


@transaction.atomic
def _store(items: list[_Valid], clients: dict[str, int]) -> dict[int, RecordOutcome]:
    outcomes: dict[int, RecordOutcome] = {}
    known = _known(items, clients)
    first_in_request: set[tuple[int, str]] = set()
    repeats: list[tuple[int, tuple[int, str]]] = []  # (index, key) of in-request repeats
    fresh: list[_Valid] = []
    for item in items:
        client_id = clients[item.client_slug]
        key = (client_id, item.fields["external_id"])
        existing = known[client_id].referrals.get(key[1])
        if existing is not None:
            outcomes[item.index] = RecordOutcome(
                index=item.index, status="duplicate", id=existing, external_id=key[1]
            )
        elif key in first_in_request:
            repeats.append((item.index, key))
        else:
            first_in_request.add(key)
            fresh.append(item)

    # Only records that will be stored may create a campaign: a duplicate changes nothing.
    campaigns = _campaigns(fresh, clients, known)
    to_create: list[tuple[_Valid, Referral]] = []
    for item in fresh:
        client_id = clients[item.client_slug]
        campaign_id = campaigns[(client_id, item.campaign_external_id)]
        to_create.append(
            (item, Referral(client_id=client_id, campaign_id=campaign_id, **item.fields))
        )

    # Inserted in key order, so two requests sharing external ids lock them in the same order
    # and wait for each other instead of deadlocking.
    referrals_insert(sorted((r for _, r in to_create), key=lambda r: (r.client_id, r.external_id)))
    ids = {(r.client_id, r.external_id): r.pk for _, r in to_create}
    for item, referral in to_create:
        outcomes[item.index] = RecordOutcome(
            index=item.index, status="created", id=referral.pk, external_id=referral.external_id
        )
    for index, key in repeats:  # a repeat within the request points at the stored record
        outcomes[index] = RecordOutcome(
            index=index, status="duplicate", id=ids[key], external_id=key[1]
        )
    return outcomes


def _known(items: list[_Valid], clients: dict[str, int]) -> dict[int, Known]:
    """Per client of ``items``: the referrals it already holds and the campaigns it has, of
    those the records name (one statement a client on PostgreSQL)."""
    wanted: dict[int, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for item in items:
        referral_ids, campaign_ids = wanted[clients[item.client_slug]]
        referral_ids.add(item.fields["external_id"])
        campaign_ids.add(item.campaign_external_id)
    return {
        client_id: known_ids(client_id, referral_ids, campaign_ids)
        for client_id, (referral_ids, campaign_ids) in wanted.items()
    }


def referrals_insert(referrals: list[Referral]) -> None:
    """Insert new referrals, setting their ids: on PostgreSQL a few in one prepared INSERT,
    many by COPY; ``bulk_create`` elsewhere.

    ``bulk_create`` spends most of its time preparing each value of each row in Python; COPY
    takes the values as they are, so ingestion runs several times faster, but it costs three
    round trips (the ids from the table's sequence, then COPY's own two): for the one referral
    a collector usually posts, an INSERT prepared once per connection takes one. Either way
    the stored hooks (the deliveries' ledger) run in the same transaction (``referrals.hooks``).
    """
    if not referrals:
        return
    if connection.vendor != "postgresql":
        Referral.objects.bulk_create(referrals)
        return
    if len(referrals) <= _INSERT_AT_MOST:
        _insert_few(referrals)
    else:
        _copy_many(referrals)
    for referral in referrals:
        referral._state.adding = False
        referral._state.db = "default"
    stored_hooks_run([referral.pk for referral in referrals])


# Up to this many referrals go in one INSERT (a statement prepared per count), more by COPY.
_INSERT_AT_MOST = 10


def _insert_few(referrals: list[Referral]) -> None:
    fields = [f for f in Referral._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    table = connection.ops.quote_name(Referral._meta.db_table)
    statement = (
        f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(referrals))} "  # noqa: S608 (model names only)
        "RETURNING id, client_id, external_id"
    )
    with prepared_cursor() as cursor:
        params = [value for r in referrals for value in referral_values(r, fields)]
        cursor.execute(statement, params)
        # RETURNING promises no order: matched by the (client, external id) key.
        ids = {(client_id, external_id): pk for pk, client_id, external_id in cursor.fetchall()}
    for referral in referrals:
        referral.pk = ids[(referral.client_id, referral.external_id)]


def _copy_many(referrals: list[Referral]) -> None:
    fields = list(Referral._meta.concrete_fields)
    table = Referral._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(referrals)],
        )
        for referral, (pk,) in zip(referrals, cursor.fetchall(), strict=True):
            referral.pk = pk
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(f.column) for f in fields)
        )
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for referral in referrals:
                copy.write_row(referral_values(referral, fields))


def _campaigns(
    items: list[_Valid], clients: dict[str, int], known: dict[int, Known]
) -> dict[tuple[int, str], int]:
    """The id of every campaign the records name, creating the ones new to their client.

    A campaign the collector has not announced yet is created rather than refused: the referral
    is real and must not be lost, and the account manager can rename the campaign later.
    """
    names: dict[tuple[int, str], str] = {}
    for item in items:
        key = (clients[item.client_slug], item.campaign_external_id)
        names.setdefault(key, item.campaign_name or item.campaign_external_id)
    found = {
        (client_id, external_id): known[client_id].campaigns[external_id]
        for client_id, external_id in names
        if external_id in known[client_id].campaigns
    }
    missing = sorted(key for key in names if key not in found)  # one lock order, as above
    if missing:
        Campaign.objects.bulk_create(
            [
                Campaign(client_id=cid, external_id=ext, name=names[(cid, ext)])
                for cid, ext in missing
            ],
            ignore_conflicts=True,  # a concurrent request may create the same campaign
        )
        for client_id in {cid for cid, _ in missing}:
            created = known_ids(client_id, (), [ext for cid, ext in missing if cid == client_id])
            found.update(
                ((client_id, ext), pk) for ext, pk in created.campaigns.items()
            )  # fmt: skip
    return found


def _invalid(index: int, external_id: str | None, field_name: str, message: str) -> RecordOutcome:
    return RecordOutcome(
        index=index,
        status="invalid",
        external_id=external_id,
        errors=[{"field": field_name, "message": message}],
    )


def _flatten_errors(errors: Any, prefix: str = "") -> Iterable[dict[str, str]]:
    if isinstance(errors, Mapping):
        for name, nested in errors.items():
            yield from _flatten_errors(nested, f"{prefix}.{name}" if prefix else str(name))
    elif isinstance(errors, list):
        for nested in errors:
            yield from _flatten_errors(nested, prefix)
    else:
        yield {"field": prefix or "non_field_errors", "message": str(errors)}
