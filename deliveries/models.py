"""Deliveries, the per-delivery ledger of what each one owes, and file batches.

The ledger (``DeliveryItem``) is written in the same transaction that stores a referral: one
row per delivery whose scope the referral matches. A file run freezes what its delivery owes
into a ``Batch`` (its ``BatchEntry`` rows); a batch is then sent, and resent, as it is, under
the same name.
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

    class BodyFormat(models.TextChoices):
        JSON = "json", "JSON"
        FORM = "form", "Form (application/x-www-form-urlencoded)"
        XML = "xml", "XML"
        QUERY = "query", "Query string (GET)"

    class AuthKind(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "Basic (user name and password)"
        BEARER = "bearer", "Bearer token"
        API_KEY_HEADER = "api_key_header", "API key in a header"
        API_KEY_QUERY = "api_key_query", "API key in a query parameter"

    class Match(models.TextChoices):
        NONE = "none", "Status only"
        CONTAINS = "contains", "Body contains"
        REGEX = "regex", "Body matches regex"
        JSON_PATH = "json_path", "JSON path equals"

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
    # The retention purge (privacy) removed the ledger's record (item, batch entry) of some
    # referrals stored up to this time: a backfill starts after it, or it would owe again,
    # and send again, what was delivered.
    purged_through = models.DateTimeField(null=True, blank=True, editable=False)

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

    # Real-time API
    url = models.CharField(max_length=2000, blank=True, help_text="https://crm.example.com/leads")
    http_method = models.CharField(
        max_length=4, choices=[("POST", "POST"), ("PUT", "PUT"), ("GET", "GET")], default="POST"
    )
    body_format = models.CharField(max_length=8, choices=BodyFormat.choices, default="json")
    body_template = models.TextField(
        blank=True,
        help_text="Empty: one field per column. Otherwise the body, with {{{Field}}} "
        "placeholders escaped for the format.",
    )
    headers = models.JSONField(default=list, blank=True, help_text="[{'name': ..., 'value': ...}]")
    auth_kind = models.CharField(max_length=16, choices=AuthKind.choices, default="none")
    auth_username = models.CharField(max_length=255, blank=True)
    auth_secret = EncryptedTextField(blank=True)
    auth_key_name = models.CharField(
        max_length=100, blank=True, help_text="The header or query parameter of an API key."
    )
    connect_timeout = models.FloatField(default=5.0)
    total_timeout = models.FloatField(default=15.0)
    accepted_statuses = models.CharField(
        max_length=200, default="2xx", help_text="'2xx', or codes and ranges: '200, 201, 202'."
    )
    success_match = models.CharField(max_length=10, choices=Match.choices, default="none")
    success_match_value = models.TextField(blank=True)
    success_json_path = models.CharField(max_length=200, blank=True)
    signing_secret = EncryptedTextField(blank=True)
    previous_signing_secret = EncryptedTextField(blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    max_in_flight = models.PositiveIntegerField(
        default=8, help_text="Requests to this endpoint at once; more wait their turn."
    )
    pause_after_minutes = models.PositiveIntegerField(
        default=24 * 60, help_text="Failing continuously this long pauses the delivery."
    )
    updated_at = models.DateTimeField(auto_now=True)

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
            # Batches finished lately, for /metrics; a few rows per delivery and hour.
            models.Index(fields=["finished_at"], name="batch_finished"),
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
    """One referral a delivery owes (the ledger), written with the referral
    (``deliveries.ledger``).

    Real-time items stay, their status the state machine of the referral's delivery. File
    items ("file") are what a file delivery has not yet put in a batch: freezing a batch moves
    them into narrow ``BatchEntry`` rows (a DELETE and an INSERT of two ids each, far cheaper
    than rewriting a million wide rows and their indexes).
    """

    class Status(models.TextChoices):
        FILE = "file", "Owed to a file delivery"
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        REJECTED = "rejected", "Rejected (not retried)"
        FAILED = "failed", "Failed (retried)"

    # No index of its own: the unique constraint leads with it (an item is written three
    # times on its way: an index fewer to write each time).
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.FILE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The worker that claimed it (``deliveries.liveness``): once that worker is known dead,
    # the item is sent again at once, not when the lease ends. Meaningful while "sending".
    claimed_by = models.CharField(max_length=64, null=True, blank=True)
    # When the tick last queued it: a backlog must not make every tick queue it again.
    queued_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "referral"], name="one_item_per_referral_and_delivery"
            ),
        ]
        indexes = [
            # What a file delivery owes: found without reading anything else.
            models.Index(fields=["delivery"], condition=Q(status="file"), name="item_owed_file"),
            # Items still in flight, by delivery: what the API retry tick looks at, and the
            # due backlog a send goes on with, oldest first (the id orders items due at the
            # same time: a resume makes a whole backlog due at once).
            models.Index(
                fields=["delivery", "status", "next_attempt_at", "id"],
                condition=Q(status__in=["pending", "sending", "failed"]),
                name="item_api_open",
            ),
            # What each delivery owes and since when, for /metrics (metrics/collector.py):
            # a count is an index-only scan of the backlog, the oldest the first entry.
            models.Index(
                fields=["delivery", "created_at"],
                condition=Q(status__in=["file", "pending", "sending", "failed"]),
                name="item_owed_age",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}:{self.referral_id}"


class BatchEntry(models.Model):
    """A referral in a frozen batch. Written only with its batch, in the batch's transaction,
    a million at a time: no foreign key checks (they cost seconds per million rows)."""

    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="entries", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    referral = models.ForeignKey(
        Referral, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False,
        db_index=False,
    )  # fmt: skip

    class Meta:
        indexes = [models.Index(fields=["batch", "referral"], name="batch_entry")]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.referral_id}"


class Attempt(models.Model):
    """One HTTP attempt of a real-time delivery: what was sent (secrets redacted), what came
    back, how long it took, and what it meant."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    # No index of its own: ``attempt_recent`` leads with it.
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempts", db_index=False
    )
    # No database constraint: it would make PostgreSQL check this table for every ledger row
    # a batch freeze deletes (seconds per million); attempts point at real-time items only,
    # which are never deleted but with their delivery (Django cascades).
    item = models.ForeignKey(
        DeliveryItem, null=True, blank=True, on_delete=models.CASCADE, related_name="attempt_log",
        db_constraint=False,
    )  # fmt: skip
    referral_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    number = models.PositiveIntegerField(default=1)
    test = models.BooleanField(default=False, help_text="A 'send test referral' request.")
    started_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=8)
    url = models.TextField()
    request_headers = models.JSONField(default=list)
    request_body = models.TextField(blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=list)
    response_body = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error_class = models.CharField(max_length=32, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["delivery", "started_at"], name="attempt_recent"),
            # The attempts of the last minutes across deliveries, for /metrics.
            models.Index(fields=["started_at"], name="attempt_started"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.url[:60]} -> {self.status_code or self.error_class}"


class WorkerHeartbeat(models.Model):
    """The last time a Celery worker ran the heartbeat task that beat schedules.

    One row per worker hostname, so ``/healthz`` can say whether anything consumes the queues.
    """

    hostname = models.CharField(max_length=255, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class DeliveryDay(models.Model):
    """What a delivery did on a day, for the ledger items and attempts the retention purge
    removed (``privacy.purge``): the readers of daily figures add these to what they count
    from live rows, so a purge changes no chart, health figure or total.

    ``day`` is the date in the client's time zone (a client's charts), ``utc_day`` in UTC
    (the all-clients chart): a client's day spans at most two UTC days, so a row per pair
    serves both."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    utc_day = models.DateField()
    delivered = models.PositiveIntegerField(default=0, help_text="Items delivered (real time).")
    rejected = models.PositiveIntegerField(default=0, help_text="Items rejected.")
    attempts_delivered = models.PositiveIntegerField(default=0)
    attempts_rejected = models.PositiveIntegerField(default=0)
    attempts_failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "day", "utc_day"], name="delivery_day_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} on {self.day}"
