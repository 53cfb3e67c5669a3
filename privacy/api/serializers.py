"""An erasure request names a person one of two ways, each its own body (``oneOf`` in the
schema, ``privacy.api.schema``): an email (with an optional client as its scope), or a client
and an external id. Unknown fields are refused, so a body that mixes the two is refused as
the schema says."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from deliveries.api.serializers import ClientSlugField
from privacy.erasure import ErasureInvalid, Person
from privacy.models import ErasureReceipt
from referrals.models import Client
from rokt_platform.api_fields import StrictCharField

# A character that the normalisation (ASCII trim) keeps: white space alone names nobody.
NOT_BLANK = RegexValidator(r"[^ \t\n\r\x0b\x0c]", "Give the email address to erase: it is blank.")


class _Closed(serializers.Serializer):
    """Refuses a field it does not know (``additionalProperties: false`` in the schema)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field: erase by email (and client), or by client and "
                            "external_id."] for name in unknown}
                )  # fmt: skip
        return super().to_internal_value(data)


class ErasureByEmailSerializer(_Closed):
    """A person by email: in every client's referrals, or in ``client``'s."""

    email = StrictCharField(
        max_length=254, trim_whitespace=False, validators=[NOT_BLANK],
        help_text="An email address, matched as the hash custom field normalises it (trimmed, "
        "ASCII letters lower-cased).",
    )  # fmt: skip
    client = ClientSlugField(
        slug_field="slug", queryset=Client.objects.all(), required=False,
        help_text="The client (its slug) whose referrals to erase; absent: every client's.",
    )  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        return _person(Person.by_email, attrs["email"], attrs.get("client"))


class ErasureByExternalIdSerializer(_Closed):
    """A person by the collector's id of their referral, which is unique within a client."""

    client = ClientSlugField(
        slug_field="slug", queryset=Client.objects.all(),
        help_text="The client (its slug) whose external id it is.",
    )  # fmt: skip
    external_id = StrictCharField(
        min_length=1, max_length=100, trim_whitespace=False,
        help_text="The collector's id of the referral, exactly as stored.",
    )  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        return _person(Person.by_external_id, attrs["external_id"], attrs["client"])


def _person(make, value: str, client: Client | None) -> dict:
    try:
        return {"person": make(value, client=client)}
    except ErasureInvalid as exc:
        raise serializers.ValidationError(str(exc)) from None


def erasure_request_serializer(data) -> serializers.Serializer:
    """The body's own serializer: by external id when it names one, else by email."""
    by_id = isinstance(data, dict) and "external_id" in data
    kind = ErasureByExternalIdSerializer if by_id else ErasureByEmailSerializer
    return kind(data=data)


class ErasureReceiptSerializer(serializers.ModelSerializer):
    client = serializers.SlugRelatedField(
        slug_field="slug",
        read_only=True,
        allow_null=True,
        help_text="The scope (a client's slug); null: every client.",
    )
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)

    class Meta:
        model = ErasureReceipt
        fields = [
            "id", "identifier_kind", "identifier_hash", "client", "source", "requested_by",
            "created_at", "referrals", "ledger_items", "batch_entries", "attempts",
            "export_files", "unsent_batches", "sent_batches", "delivered_items",
        ]  # fmt: skip
        read_only_fields = fields
