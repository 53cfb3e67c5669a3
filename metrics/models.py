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
