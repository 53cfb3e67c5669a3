"""Privacy's records: the referral access log, erasure receipts (no personal data) and what
each retention purge did."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from referrals.models import Client


class AccessLogEntry(models.Model):
    """One request that showed referral data (or asked for it and was refused): who, when,
    whose data, which page or API operation, which referral or how many rows, from where, and
    how it was answered. Written by ``privacy.access_log``; read by superusers only."""

    class Kind(models.TextChoices):
        ADMIN = "admin", "admin page"
        API = "api", "API"

    class Role(models.TextChoices):
        SUPERUSER = "superuser", "superuser"
        STAFF = "staff", "account manager"
        CLIENT_USER = "client", "client user"
        OTHER = "other", "other (API account)"

    # Indexed: the purge deletes by it, the admin lists and filters by it.
    at = models.DateTimeField(default=timezone.now, db_index=True)
    # A deleted user's rows stay (the log outlives accounts), naming them by ``username``.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField("username (as it was)", max_length=150)
    role = models.CharField(max_length=10, choices=Role.choices)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    operation = models.CharField(max_length=60, help_text="The page or API operation.")
    path = models.CharField(max_length=300, help_text="Without the query string.")
    # Whose data was shown: client ids as " 3 7 " (a space either side of each, so that
    # ``contains " 3 "`` finds one on any database) and their names at the time.
    client_ids = models.TextField("client ids", blank=True)
    client_names = models.TextField("clients", blank=True)
    # A detail page's referral; a list gives ``rows`` only (docs/PRIVACY.md says why).
    referral_id = models.BigIntegerField("referral", null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    status = models.PositiveSmallIntegerField("HTTP status")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "referral access log entry"
        verbose_name_plural = "referral access log"
        indexes = [
            # "Who saw this referral?": the detail views' rows only (lists hold none).
            models.Index(
                fields=["referral_id"], name="access_referral",
                condition=models.Q(referral_id__isnull=False),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.username} {self.operation} at {self.at:%Y-%m-%d %H:%M:%S} UTC"

    @property
    def refused(self) -> bool:
        return self.status >= 400


class ErasureReceipt(models.Model):
    """One erasure on request: a keyed hash of who was asked for (never the identifier
    itself), the scope, what was deleted, who asked and when."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address"
        EXTERNAL_ID = "external_id", "Client and external id"

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin action"

    identifier_kind = models.CharField(max_length=12, choices=Kind.choices)
    # HMAC-SHA256 (privacy.erasure.identifier_hash): the same person gives the same hash, so
    # "was this person erased?" can be answered by asking again, but no one can read it back.
    identifier_hash = models.CharField(max_length=64, db_index=True)
    client = models.ForeignKey(
        Client, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="The scope: this client's referrals only; empty: every client's.",
    )  # fmt: skip
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    referrals = models.PositiveIntegerField(default=0)
    ledger_items = models.PositiveIntegerField(
        default=0, help_text="What deliveries still owed or had sent (queued sends included)."
    )
    batch_entries = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0, help_text="Real-time requests logged.")
    export_files = models.PositiveIntegerField(default=0, help_text="Unexpired files deleted.")
    unsent_batches = models.PositiveIntegerField(
        default=0, help_text="File batches not yet sent, now written without them."
    )
    sent_batches = models.PositiveIntegerField(
        default=0, help_text="Files already sent that held them (the client has those)."
    )
    delivered_items = models.PositiveIntegerField(
        default=0, help_text="Real-time sends the client had already received."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Erasure #{self.pk} ({self.get_identifier_kind_display()})"


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
