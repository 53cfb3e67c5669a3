"""What the retention purge removes, one entry per kind of row, run in this order.

Each target is ``purge(now, batch_size) -> int`` (rows or files removed): it reads its own
retention setting, works in short transactions of at most ``batch_size`` rows and never
removes what a delivery still owes. Another kind is one more line here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from exports.services import exports_purge_expired
from privacy.access_log import access_log_purge
from privacy.models import PurgeRun
from privacy.purge_ledger import (
    attempts_purge,
    batch_entries_cutoff,
    batch_entries_purge,
    ledger_items_purge,
)
from privacy.purge_referrals import referrals_retention_purge


@dataclass(frozen=True)
class PurgeTarget:
    name: str
    purge: Callable[[dt.datetime, int], int]


def _batch_entries(now: dt.datetime, batch_size: int) -> int:
    """Only batches sent since the last completed run's cutoff: older ones are empty."""
    last = (
        PurgeRun.objects.filter(status=PurgeRun.Status.DONE, cutoffs__has_key="batch_entries")
        .values_list("cutoffs", flat=True)
        .first()
    )
    since = dt.datetime.fromisoformat(last["batch_entries"]) if last else None
    return batch_entries_purge(now, batch_size, since)


def _export_files(now: dt.datetime, batch_size: int) -> int:
    return exports_purge_expired()  # EXPORT_FILE_TTL_HOURS after each export


def _access_log(now: dt.datetime, batch_size: int) -> int:
    return access_log_purge(now=now, batch_size=batch_size)  # ACCESS_LOG_RETENTION_DAYS


PURGE_TARGETS: list[PurgeTarget] = [
    PurgeTarget("referrals_anonymised_or_deleted", referrals_retention_purge),
    PurgeTarget("ledger_items", ledger_items_purge),
    PurgeTarget("batch_entries", _batch_entries),
    PurgeTarget("attempts", attempts_purge),
    PurgeTarget("export_files", _export_files),
    PurgeTarget("access_log", _access_log),
]


def purge_cutoffs(now: dt.datetime) -> dict[str, str]:
    """What a completed run records for the next one (``_batch_entries``)."""
    cutoff = batch_entries_cutoff(now)
    return {"batch_entries": cutoff.isoformat()} if cutoff else {}
