from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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
