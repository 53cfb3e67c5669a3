from django.db import models


class BeatTick(models.Model):
    """When beat last sent a scheduled task (one row, written by beat itself: ``metrics.beat``).

    The worker heartbeat says a worker ran what beat sent; this says beat is sending at all, so
    "beat stopped" and "workers stopped" are told apart.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    ticked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"beat ticked at {self.ticked_at:%Y-%m-%d %H:%M:%S}"


class BacklogSnapshot(models.Model):
    """What each delivery owes and since when, as counted at ``taken_at`` (one row;
    ``metrics.backlog``): a worker recounts it every few seconds so that a scrape need not."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    taken_at = models.DateTimeField()
    # {"<delivery id>": [items owed, the oldest's created_at as a Unix time]}
    owed = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"backlog at {self.taken_at:%Y-%m-%d %H:%M:%S}"
