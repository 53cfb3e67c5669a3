"""Deliveries, the per-delivery ledger of what each one owes, and file batches.

The ledger (``DeliveryItem``) is written in the same transaction that stores a referral: one
row per delivery whose scope the referral matches. A file run freezes the pending rows of its
delivery into a ``Batch``; a batch is then sent, and resent, as it is, under the same name.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from deliveries.secrets import EncryptedTextField
from referrals.models import Campaign, Client, Referral


class Delivery(models.Model):
    class Kind(models.TextChoices):
        API = "api", "Real-time API"
        SFTP = "sftp", "SFTP files"
        FTPS = "ftps", "FTPS files"

    class TlsMode(models.TextChoices):
        EXPLICIT = "explicit", "Explicit (AUTH TLS, usually port 21)"
        IMPLICIT = "implicit", "Implicit (TLS from the start, usually port 990)"

    class Quoting(models.TextChoices):
        MINIMAL = "minimal", "Only where needed"
        ALL = "all", "Every value"

    class Marker(models.TextChoices):
        NONE = "none", "None"
        MANIFEST = "manifest", "<name>.manifest.json (rows, bytes, sha256, batch)"
        DONE = "done", "<name>.done (empty)"

    class NameZone(models.TextChoices):
        CLIENT = "client", "The client's time zone"
        UTC = "utc", "UTC"

    class ScheduleKind(models.TextChoices):
        INTERVAL = "interval", "Every N minutes"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        CRON = "cron", "Cron expression"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="deliveries")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    active = models.BooleanField(
        default=True,
        help_text="Inactive: records nothing and sends nothing (like a deleted delivery).",
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.TextField(blank=True)
    all_campaigns = models.BooleanField(default=True)
    campaigns = models.ManyToManyField(Campaign, blank=True, related_name="deliveries")
    columns = models.JSONField(
        default=list,
        blank=True,
        help_text="Ordered [{'source': ..., 'output': ...}]; empty: every standard column.",
    )
    starts_at = models.DateTimeField(
        default=timezone.now,
        help_text="Referrals stored from this time on are delivered (earlier: a backfill).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # Connection (SFTP / FTPS)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    private_key = EncryptedTextField(blank=True)
    passphrase = EncryptedTextField(blank=True)
    remote_dir = models.CharField(max_length=500, default=".", blank=True)
    host_key = models.TextField(
        blank=True, help_text="SFTP: the server's public key line, or its SHA256 fingerprint."
    )
    tls_mode = models.CharField(max_length=8, choices=TlsMode.choices, default=TlsMode.EXPLICIT)
    certificate_fingerprint = models.CharField(
        max_length=120,
        blank=True,
        help_text="FTPS: the certificate's SHA-256 fingerprint; empty: verified by system CAs.",
    )

    # File format
    file_name_template = models.CharField(
        max_length=255, default="{{{client}}}_{{{delivery}}}_{{{batch}}}_{{{timestamp}}}.csv"
    )
    name_time_zone = models.CharField(
        max_length=8, choices=NameZone.choices, default=NameZone.CLIENT
    )
    header = models.BooleanField(default=True)
    bom = models.BooleanField(default=False, help_text="Start the file with a UTF-8 BOM.")
    delimiter = models.CharField(max_length=1, default=",")
    quoting = models.CharField(max_length=8, choices=Quoting.choices, default=Quoting.MINIMAL)
    gzip = models.BooleanField(default=False)
    max_rows_per_file = models.PositiveIntegerField(null=True, blank=True)
    marker = models.CharField(max_length=8, choices=Marker.choices, default=Marker.NONE)
    send_empty = models.BooleanField(default=False, help_text="Send a file when nothing is new.")

    # Schedule, in the client's time zone
    schedule_kind = models.CharField(
        max_length=8, choices=ScheduleKind.choices, default=ScheduleKind.DAILY
    )
    schedule_every_minutes = models.PositiveIntegerField(null=True, blank=True)
    schedule_minute = models.PositiveSmallIntegerField(default=0)
    schedule_time = models.TimeField(null=True, blank=True)
    schedule_weekday = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="0 = Monday ... 6 = Sunday."
    )
    schedule_cron = models.CharField(max_length=120, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)

    # Health
    last_success_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["client__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["client", "name"], name="delivery_name_per_client"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_file(self) -> bool:
        return self.kind in (self.Kind.SFTP, self.Kind.FTPS)

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class Batch(models.Model):
    """A numbered, frozen set of referrals for one file delivery, and how sending it went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will be resent)"

    class Kind(models.TextChoices):
        NEW = "new", "New referrals"
        REDELIVERY = "redelivery", "Redelivery of a time range"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.NEW)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # The time the file names carry: fixed when frozen, so a resend has the same names.
    run_at = models.DateTimeField()
    range_start = models.DateTimeField(null=True, blank=True)
    range_end = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list, blank=True)  # [{name, rows, bytes, sha256}]
    bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    requested_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-delivery_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="batch_number_per_delivery"
            ),
        ]
        indexes = [
            models.Index(
                fields=["delivery", "number"],
                condition=~Q(status="sent"),
                name="batch_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery.name} batch {self.number}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def throughput_bytes_per_second(self) -> float | None:
        duration = self.duration_seconds
        if duration and self.bytes is not None:
            return self.bytes / duration
        return None


class DeliveryItem(models.Model):
    """One referral a delivery owes (the ledger), and the batch that carried it, if any.

    Written with the referral (``deliveries.ledger``). Items of redelivery batches are extra
    rows marked ``redelivery``: a referral is owed once per delivery, and may be redelivered
    any number of times.
    """

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="items")
    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="+")
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.RESTRICT, related_name="items"
    )
    redelivery = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "referral"],
                condition=Q(redelivery=False),
                name="one_item_per_referral_and_delivery",
            ),
        ]
        indexes = [
            # What a delivery still owes: found without reading what it has sent.
            models.Index(fields=["delivery"], condition=Q(batch__isnull=True), name="item_pending"),
            models.Index(fields=["batch", "referral"], name="item_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}:{self.referral_id}"


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the heartbeat task that beat schedules.

    One row per worker hostname, so ``/healthz`` can say whether anything consumes the queues.
    """

    hostname = models.CharField(max_length=255, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
