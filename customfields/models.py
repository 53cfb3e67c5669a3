"""A client's own output formats: named fields computed from a referral."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from referrals.models import Client, validate_time_zone


class CustomField(models.Model):
    class Kind(models.TextChoices):
        VALUE_MAP = "value_map", "Value map"
        DATETIME = "datetime", "Date/time format"
        TEMPLATE = "template", "Template"
        CONSTANT = "constant", "Constant"
        CASE = "case", "Case"
        HASH = "hash", "Hash"

    class NoMatch(models.TextChoices):
        DEFAULT = "default", "Output the default"
        PASSTHROUGH = "passthrough", "Pass the input through"

    class DateOutput(models.TextChoices):
        STRFTIME = "strftime", "Pattern (strftime)"
        ISO8601 = "iso8601", "ISO 8601"
        EXCEL = "excel", "Excel serial number"

    class Case(models.TextChoices):
        UPPER = "upper", "UPPER"
        LOWER = "lower", "lower"
        TITLE = "title", "Title"

    class Algorithm(models.TextChoices):
        SHA256 = "sha256", "SHA-256"
        MD5 = "md5", "MD5"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="custom_fields")
    name = models.CharField(
        max_length=64,
        help_text="Letters, digits and underscores, starting with a letter. Usable as a column "
        "and as a placeholder {{{Name}}}; never a standard field's name.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(
        max_length=140,
        blank=True,
        help_text="A standard field, extra.KEY (a key of the extra attributes), or another "
        "custom field of this client. "
        "Not used by templates and constants.",
    )
    # value map
    rules = models.JSONField(
        default=list,
        blank=True,
        help_text='Ordered; the first match wins. Each: {"match": "equals"|"contains"|"regex", '
        '"value": "M", "output": "Male", "case_sensitive": false}.',
    )
    empty_default = models.CharField(
        max_length=500, blank=True, help_text="Value map: the output for an empty input."
    )
    no_match = models.CharField(
        max_length=16, choices=NoMatch.choices, default=NoMatch.DEFAULT, blank=True
    )
    no_match_default = models.CharField(
        max_length=500, blank=True, help_text="Value map: the output when no rule matches."
    )
    # date/time format
    date_output = models.CharField(
        max_length=16, choices=DateOutput.choices, default=DateOutput.STRFTIME, blank=True
    )
    date_pattern = models.CharField(
        max_length=200, blank=True, help_text="strftime pattern, e.g. %d/%m/%Y %H:%M."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="Leave empty for the client's time zone.",
    )
    # template, constant, case, hash
    template = models.TextField(blank=True, help_text="e.g. {{{first_name}}} {{{last_name}}}")
    constant = models.CharField(max_length=500, blank=True)
    case = models.CharField(max_length=8, choices=Case.choices, blank=True)
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__name", "name"]
        constraints = [
            models.UniqueConstraint(
                "client", Lower("name"), name="customfield_unique_name_per_client"
            )
        ]

    def __str__(self) -> str:
        return self.name
