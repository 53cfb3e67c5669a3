"""One retention purge: every target in turn, one run at a time, recorded in ``PurgeRun``."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from privacy.models import PurgeRun
from privacy.targets import PURGE_TARGETS, purge_cutoffs
from rokt_platform.claims import claim

logger = logging.getLogger(__name__)

_NAMESPACE, _KEY = 0x50524956, 1  # "PRIV": the purge's advisory lock


def retention_purge(*, now: dt.datetime | None = None, batch_size: int | None = None):
    """Run the purge unless one is running (then None); the run's record otherwise.

    A target that fails is recorded and the others still run; the next run goes on where
    this one stopped (each target finds what is left)."""
    with claim(_NAMESPACE, _KEY, "retention-purge") as held:
        if not held:
            logger.info("retention purge: another run is under way, not starting")
            return None
        now = now or timezone.now()
        size = batch_size or settings.PURGE_BATCH_SIZE
        run = PurgeRun.objects.create(started_at=now)
        errors = []
        for target in PURGE_TARGETS:
            try:
                run.removed[target.name] = target.purge(now, size)
            except Exception as exc:
                logger.exception("retention purge: %s failed", target.name)
                errors.append(f"{target.name}: {type(exc).__name__}: {exc}")
            run.save(update_fields=["removed"])
        run.finished_at = timezone.now()
        run.status = PurgeRun.Status.FAILED if errors else PurgeRun.Status.DONE
        run.error = "\n".join(errors)
        run.cutoffs = {} if errors else purge_cutoffs(now)
        run.save(update_fields=["finished_at", "status", "error", "cutoffs"])
        logger.info("retention purge: %s", run.removed)
        return run
