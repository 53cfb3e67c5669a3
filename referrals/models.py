"""Clients, their campaigns, their referrals, and which client a user belongs to."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from referrals.hooks import stored_hooks_run


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/London).")


class Client(models.Model):
    """An advertiser: owns campaigns, referrals, deliveries and client users."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used by the ingestion API.")
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Timestamps are shown, and schedules run, in this time zone.",
    )
    active = models.BooleanField(default=True)
    require_two_factor = models.BooleanField(
        "require two-factor login",
        default=False,
        help_text="Every user of this client must enter a code from an authenticator app "
        "when logging in (users enrol at their next login).",
    )
    class RetentionAction(models.TextChoices):
        ANONYMISE = "anonymise", "Anonymise (clear personal data, keep the row for counts)"
        DELETE = "delete", "Delete"

    retention_days = models.PositiveIntegerField(
        "keep referrals for (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Referrals older than this are anonymised or deleted by the daily purge, "
        "once no delivery still owes them. Blank: kept forever.",
    )
    retention_action = models.CharField(
        "then",
        max_length=10,
        choices=RetentionAction.choices,
        default=RetentionAction.ANONYMISE,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Campaign(models.Model):
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    external_id = models.CharField(
        max_length=100, help_text="The collector's id for this campaign, unique per client."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["client__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "external_id"], name="campaign_unique_external_id_per_client"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Referrals are immutable once stored.")

    def bulk_create(self, objs, *args, **kwargs):
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            # Every way of storing a referral runs the stored hooks (the deliveries' ledger)
            # in its transaction.
            stored_hooks_run([obj.pk for obj in created if obj.pk is not None])
        return created


class Referral(models.Model):
    """A consumer who opted in to a client's offer. Immutable once stored."""

    external_id = models.CharField(max_length=100)
    # No index of their own: the indexes below lead with them (one index fewer to write per
    # referral, and none that the planner could take for a client's look-up by external id).
    client = models.ForeignKey(
        Client, on_delete=models.PROTECT, related_name="referrals", db_index=False
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="referrals", db_index=False
    )
    email = models.EmailField(max_length=254, blank=True)
    title = models.CharField(max_length=32, blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    gender = models.CharField(max_length=32, blank=True, help_text="As sent: M, F or other.")
    birth_date = models.DateField(null=True, blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    mobile = models.CharField(max_length=32, blank=True)
    address1 = models.CharField(max_length=200, blank=True)
    address2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    zip_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2.")
    language = models.CharField(max_length=35, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    browser = models.CharField(max_length=100, blank=True)
    browser_version = models.CharField(max_length=50, blank=True)
    os = models.CharField(max_length=100, blank=True)
    device = models.CharField(max_length=100, blank=True)
    ad_text = models.TextField(blank=True)
    ad_response = models.TextField(blank=True)
    audience_id = models.CharField(max_length=100, blank=True)
    audience_name = models.CharField(max_length=200, blank=True)
    bid_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    confirmation_ref = models.CharField(max_length=100, blank=True)
    opted_in_at = models.DateTimeField(help_text="When the person opted in.")
    created_at = models.DateTimeField(
        default=timezone.now, editable=False, help_text="When the platform stored it."
    )
    extra = models.JSONField(default=dict, blank=True)
    # Set once, with the personal columns cleared, by ``referrals.anonymise`` (the one change
    # a stored referral allows).
    anonymised_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "external_id"], name="referral_unique_external_id_per_client"
            )
        ]
        indexes = [
            # The admin list and the pull API page by stored time, per client or overall.
            models.Index(fields=["created_at", "id"], name="referral_created"),
            models.Index(fields=["client", "created_at", "id"], name="referral_client_created"),
            models.Index(fields=["campaign", "created_at"], name="referral_campaign_created"),
            models.Index(fields=["client", "opted_in_at"], name="referral_client_opted_in"),
            # Admin search uses case-insensitive equality on these.
            models.Index(Upper("email"), name="referral_email_upper"),
            models.Index(Upper("first_name"), name="referral_first_name_upper"),
            models.Index(Upper("last_name"), name="referral_last_name_upper"),
            models.Index(Upper("external_id"), name="referral_external_id_upper"),
        ]
        permissions = [
            ("ingest_referral", "Can ingest referrals through the API"),
            ("export_referral", "Can export referrals"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.email or 'no email'})"

    def save(self, *args, **kwargs) -> None:
        stored = not self._state.adding or (
            self.pk is not None and Referral.objects.filter(pk=self.pk).exists()
        )
        if stored:
            raise TypeError("Referrals are immutable once stored.")
        kwargs["force_insert"] = True  # never an UPDATE, whatever the pk says
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            stored_hooks_run([self.pk])


class ReferralDay(models.Model):
    """How many of a client's referrals stored on a day the retention purge deleted: the
    readers of daily figures add these to what they count from live rows, so deleting old
    referrals changes no chart or total. ``day`` is the client's date, ``utc_day`` UTC's
    (as ``deliveries.DeliveryDay``)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    utc_day = models.DateField()
    stored = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "day", "utc_day"], name="referral_day_once")
        ]

    def __str__(self) -> str:
        return f"{self.client_id} on {self.day}"


class ClientMembership(models.Model):
    """Makes a user a client user, confined to one client. Users without one are staff."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_membership"
    )
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.client}"


class ExportAudit(models.Model):
    """One export: who, which client, which filters, in which format, how many rows; for a
    background export also its progress, its file and when the file expires."""

    class Status(models.TextChoices):
        STREAMED = "streamed", "Streamed to the browser"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready to download"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "File expired"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referral_exports"
    )
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)
    rows = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now, editable=False)
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty when the download stopped before the end."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STREAMED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    file_name = models.CharField(max_length=200, blank=True)
    file_path = models.CharField(max_length=500, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    downloads = models.PositiveIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["client", "started_at"], name="export_client_started")]

    def __str__(self) -> str:
        return f"{self.user} exported {self.rows} rows of {self.client} ({self.format})"


class ExportDownload(models.Model):
    """One download of a background export's file: who, when."""

    audit = models.ForeignKey(ExportAudit, on_delete=models.CASCADE, related_name="download_log")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="export_downloads"
    )
    downloaded_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["downloaded_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} downloaded {self.audit.file_name}"
