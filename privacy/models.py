"""What each retention purge did, for account managers and operators (the admin's
**Privacy > Purge runs**)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PurgeRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (the next run goes on)"

    started_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    # Target name -> rows (or files) removed or anonymised, filled in as each target ends.
    removed = models.JSONField(default=dict, blank=True)
    # Target name -> the cutoff it used (ISO time), so the next run need not look again at
    # what this one finished (sent batches' entries).
    cutoffs = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True, help_text="What was left alone, and why.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Purge of {self.started_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def total(self) -> int:
        return sum(self.removed.values())
