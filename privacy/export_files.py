"""Export files that hold referrals being erased: found, then deleted with the erasure.

Which files hold a referral is decided by running each unexpired export's own filters
(``ExportRequest.from_audit``, the request that wrote the file) against the referral, not by
reading the files: a referral is immutable, so the filters match it now exactly when they
matched it then, whatever the file's format (XLSX is compressed) or columns (a hashed email, no
external id). A referral stored after the export finished cannot be in its file and does not
count; one stored just before may not have been (committed after the export began): its file is
deleted all the same, erring on the side of the person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exports.services import ExportRequest, export_queryset
from referrals.models import ExportAudit, Referral
from referrals.selectors import search_terms

# Clocks of the machine that stored a referral and of the one that finished an export differ
# by a little: a referral stored this long after an export finished still counts as in it.
_CLOCK_MARGIN = dt.timedelta(minutes=1)


def export_files_holding(referral_ids: Sequence[int]) -> list[ExportAudit]:
    """The exports whose file holds one of ``referral_ids`` and is still there to download,
    or is being written (its query may have read them). Call it before they are deleted."""
    clients = Referral.objects.filter(pk__in=referral_ids).values("client_id")
    now = timezone.now()
    audits = (
        ExportAudit.objects.filter(client_id__in=clients)
        .filter(Q(status=ExportAudit.Status.DONE, expires_at__gt=now)
                | Q(status=ExportAudit.Status.RUNNING))
        .select_related("client").order_by("pk")
    )  # fmt: skip
    holding = []
    for audit in audits:
        finished = audit.completed_at or now
        matched = export_queryset(ExportRequest.from_audit(audit)).filter(
            pk__in=referral_ids, created_at__lte=finished + _CLOCK_MARGIN
        )
        if matched.exists():
            holding.append(audit)
    return holding


def export_files_delete(audits: Sequence[ExportAudit], *, why: str) -> int:
    """Take ``audits``' files away in the caller's transaction (the audit row says ``why``):
    a finished one's file is deleted once the transaction commits (a rollback leaves it), a
    running one is stopped (its build, finding its audit no longer running, deletes what it
    wrote: ``exports.services.export_build``). How many."""
    taken = 0
    for audit in ExportAudit.objects.select_for_update().filter(pk__in=[a.pk for a in audits]):
        # Read under its lock: a build that finished meanwhile has made it DONE, with its file.
        if audit.status == ExportAudit.Status.RUNNING:
            ExportAudit.objects.filter(pk=audit.pk).update(
                status=ExportAudit.Status.FAILED, error=f"{why} Export again to get the rest."
            )
        elif audit.status == ExportAudit.Status.DONE and audit.file_path:
            ExportAudit.objects.filter(pk=audit.pk).update(
                status=ExportAudit.Status.EXPIRED, file_path="", expires_at=timezone.now(),
                error=why,
            )  # fmt: skip
            path = Path(audit.file_path)
            transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
        else:
            continue
        taken += 1
    return taken


# What an export audit's search shows where it named an erased person.
ERASED = "[erased]"


def export_searches_redact(referral_ids: Sequence[int]) -> int:
    """Export audits keep the search each export ran (the referral list's: exact external ids,
    emails, names); a word of one that is the email or external id of a referral being erased
    becomes ``ERASED``, so the audit still says that a search was made, not for whom. Names
    are left: they name many people. Call it before the referrals are deleted. How many
    audits changed."""
    named: dict[int, set[str]] = {}
    found = Referral.objects.filter(pk__in=referral_ids).values_list(
        "client_id", "email", "external_id"
    )
    for client_id, email, external_id in found:
        named.setdefault(client_id, set()).update(v.lower() for v in (email, external_id) if v)
    searched = (
        ExportAudit.objects.filter(client_id__in=list(named)).exclude(filters__search="")
        .exclude(filters__search=None).only("pk", "client_id", "filters").order_by("pk")
    )  # fmt: skip
    changed = 0
    for audit in searched:
        terms = search_terms(audit.filters.get("search") or "")
        kept = [ERASED if term.lower() in named[audit.client_id] else term for term in terms]
        if kept != terms:
            search = " ".join(f'"{term}"' if " " in term else term for term in kept)
            ExportAudit.objects.filter(pk=audit.pk).update(filters={**audit.filters,
                                                                    "search": search})  # fmt: skip
            changed += 1
    return changed
