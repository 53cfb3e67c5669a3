"""What the apps built on this one do when referrals are stored, in the storing transaction.

Every way of storing a referral runs every registered hook before its transaction commits:
``Referral.save``, ``Referral.objects.bulk_create`` and ``referrals.services.referrals_insert``
(the ingestion's INSERT or COPY) call ``stored_hooks_run``; ``referrals.ingest_few``, which
stores a few referrals in one statement, puts each hook's SQL in that statement. So a referral
and what another app records of it (the deliveries' ledger) commit together or not at all.

Those apps register their hook from their ``AppConfig.ready()``; this app never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredHook:
    """One app's part in storing referrals.

    ``record(ids)`` runs after the referrals of ``ids`` were inserted, in their transaction.

    ``cte`` does the same inside ``referrals.ingest_few``'s one statement (one round trip for
    the referrals and every hook): the body of a data-modifying CTE that reads the CTE ``r``
    (``id, client_id, campaign_id, created_at`` of the referrals just inserted), takes
    ``cte_params()`` for its placeholders, and returns exactly three columns (an integer, an
    integer, a text); ``cte_rows`` gets those rows, once the statement has run.
    """

    name: str
    record: Callable[[Sequence[int]], None]
    cte: str
    cte_params: Callable[[], list]
    cte_rows: Callable[[list[tuple]], None]


_HOOKS: list[StoredHook] = []


def stored_hook_register(hook: StoredHook) -> None:
    if all(existing.name != hook.name for existing in _HOOKS):
        _HOOKS.append(hook)


def stored_hooks() -> tuple[StoredHook, ...]:
    return tuple(_HOOKS)


def stored_hooks_run(referral_ids: Sequence[int]) -> None:
    """Run every hook for referrals just inserted; the caller's transaction holds them."""
    if not referral_ids:
        return
    for hook in _HOOKS:
        hook.record(referral_ids)


# What the apps built on this one learn of each ingestion (``referrals_ingest``) once it has
# run: every record's status ("created", "duplicate", "invalid") and the seconds it took.
# In the ingesting process, after its transaction (``metrics`` counts them).
_INGESTED: list[Callable[[Sequence[str], float], None]] = []


def ingested_hook_register(hook: Callable[[Sequence[str], float], None]) -> None:
    if hook not in _INGESTED:
        _INGESTED.append(hook)


def ingested_hooks_run(statuses: Sequence[str], seconds: float) -> None:
    for hook in _INGESTED:
        hook(statuses, seconds)
