"""What the demo's webhook inbox received."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from deliveries.models import Delivery


class InboxMessage(models.Model):
    """One request a real-time delivery made to the inbox, as it arrived, with the verdict on
    its Standard Webhooks signature."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    method = models.CharField(max_length=8)
    webhook_id = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    signature_valid = models.BooleanField()
    problem = models.CharField(
        max_length=200, blank=True, help_text="Why the signature was not accepted."
    )
    answered = models.PositiveSmallIntegerField(help_text="The status the inbox answered.")

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "received webhook"

    def __str__(self) -> str:
        return f"{self.webhook_id or 'unsigned request'} at {self.received_at:%Y-%m-%d %H:%M:%S}"
