"""What an erasure leaves behind: a receipt without personal data."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from referrals.models import Client


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
