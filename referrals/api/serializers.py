"""Shapes of a referral on the wire, in and out."""

from __future__ import annotations

from rest_framework import serializers

from referrals.models import Referral
from referrals.storable import unstorable_path
from rokt_platform.api_fields import strict, text_too_long

# Fields a collector may send, besides client, campaign and campaign_name.
INGEST_FIELDS = (
    "external_id", "email", "title", "first_name", "last_name", "gender", "birth_date", "age",
    "mobile", "address1", "address2", "city", "state", "zip_code", "country", "language",
    "ip_address", "user_agent", "browser", "browser_version", "os", "device", "ad_text",
    "ad_response", "audience_id", "audience_name", "bid_price", "currency", "confirmation_ref",
    "opted_in_at", "extra",
)  # fmt: skip


# Digits of a whole number a text field takes: E.164 phone numbers have at most 15, and many
# JSON clients hold no larger integer exactly.
MAX_NUMBER_DIGITS = 15


def number_range(max_length: int | None) -> tuple[int, int]:
    """The whole numbers a text field of ``max_length`` takes: at most MAX_NUMBER_DIGITS
    digits, and the text (a minus sign counts) fits."""
    digits = min(max_length or MAX_NUMBER_DIGITS, MAX_NUMBER_DIGITS)
    return -(10 ** (digits - 1) - 1), 10**digits - 1


class TextOrNumberField(serializers.CharField):
    """Text; a whole number is taken as its digits (a phone, a postcode or an id sent as a
    number) unless ``numbers=False``. The schema says so (``referrals.api.schema``)."""

    def __init__(self, *, numbers: bool = True, **kwargs) -> None:
        self.numbers = numbers
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        text_too_long(self, data)
        if self.numbers and isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, int) and not isinstance(data, bool) and self.numbers:
            low, high = number_range(self.max_length)
            if not low <= data <= high:
                raise serializers.ValidationError(
                    f"Expected text, or a whole number from {low} to {high}."
                )
        elif not isinstance(data, str):
            raise serializers.ValidationError(
                "Expected text, or a whole number." if self.numbers else "Expected text."
            )
        return super().to_internal_value(data)


class _BlankableCharField(TextOrNumberField):
    """Optional text: ``null`` and absent both mean empty, as collectors send either."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def validate_empty_values(self, data):
        if data is None:
            return True, ""
        return super().validate_empty_values(data)


class ReferralIngestSerializer(serializers.ModelSerializer):
    """One incoming record. Client and campaign are resolved in bulk by the service."""

    client = strict(serializers.SlugField)(max_length=100, help_text="The client's slug.")
    campaign = TextOrNumberField(
        max_length=100, help_text="The campaign's external id; created if new to the client."
    )
    campaign_name = TextOrNumberField(
        max_length=200, required=False, allow_null=True,
        help_text="Name for a campaign created by this record.",
    )  # fmt: skip
    country = _BlankableCharField(
        max_length=2, numbers=False, help_text="ISO 3166-1 alpha-2, e.g. GB."
    )
    currency = _BlankableCharField(max_length=3, numbers=False, help_text="ISO 4217, e.g. GBP.")
    extra = serializers.DictField(
        required=False, allow_null=True, help_text="Any further attributes."
    )

    class Meta:
        model = Referral
        fields = ("client", "campaign", "campaign_name", *INGEST_FIELDS)
        # Uniqueness is checked in bulk by the service: no query per record here.
        validators: list = []
        extra_kwargs = {
            "opted_in_at": {"required": True},
            # The column's range, stated here: on SQLite the model's own bounds are 64-bit.
            "age": {"min_value": 0, "max_value": 32767},
        }

    def build_field(self, field_name, info, model_class, nested_depth):
        field_class, kwargs = super().build_field(field_name, info, model_class, nested_depth)
        if field_class is serializers.CharField:
            field_class = TextOrNumberField if field_name == "external_id" else _BlankableCharField
        elif field_class is serializers.IntegerField:  # age: a number, not its text
            field_class = strict(field_class)
        if field_name == "email":  # null means no email, as for every optional text
            kwargs["allow_null"] = True
        if field_name == "external_id":
            kwargs["validators"] = []
        return field_class, kwargs

    def validate_email(self, value: str | None) -> str:
        return value or ""

    def validate_country(self, value: str) -> str:
        return _upper_letters(value, 2, "an ISO 3166-1 alpha-2 country code such as GB")

    def validate_currency(self, value: str) -> str:
        return _upper_letters(value, 3, "an ISO 4217 currency code such as GBP")

    def validate_extra(self, value: dict | None) -> dict:
        """Refuse text PostgreSQL cannot store in a JSON column (NUL, lone surrogates);
        ``null`` means no further attributes."""
        if value is None:
            return {}
        if unstorable_path(value) is not None:
            raise serializers.ValidationError(
                "Null characters and lone surrogates are not allowed, also in keys."
            )
        return value

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["Unknown field; further attributes belong in 'extra'."]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


def _upper_letters(value: str, length: int, what: str) -> str:
    if value == "":
        return value
    # ASCII first: upper-casing some letters changes the length ("ß" -> "SS").
    if len(value) != length or not value.isascii() or not value.isalpha():
        raise serializers.ValidationError(f"Expected {what}.")
    return value.upper()


class ReferralSerializer(serializers.ModelSerializer):
    """A stored referral, as the pull API returns it."""

    client = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    campaign = serializers.SlugRelatedField(slug_field="external_id", read_only=True)

    class Meta:
        model = Referral
        fields = ("id", "client", "campaign", *INGEST_FIELDS, "created_at")
        read_only_fields = fields


class IngestErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "invalid"])
    id = serializers.IntegerField(required=False)
    external_id = serializers.CharField(required=False)
    errors = IngestErrorSerializer(many=True, required=False)


class IngestResponseSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    invalid = serializers.IntegerField()
    results = IngestResultSerializer(many=True)
