from __future__ import annotations

from rest_framework import serializers

from privacy.erasure import ErasureInvalid, Person
from privacy.models import ErasureReceipt
from referrals.models import Client


class ErasureRequestSerializer(serializers.Serializer):
    """Who to erase: ``email`` (in every client's referrals, or ``client``'s), or ``client``
    and ``external_id``."""

    email = serializers.CharField(
        required=False, max_length=254,
        help_text="An email address, matched as the hash custom field normalises it (trimmed, "
        "ASCII lower case). With ``client``: that client's referrals only; without: every "
        "client's.",
    )  # fmt: skip
    client = serializers.PrimaryKeyRelatedField(
        queryset=Client.objects.all(), required=False,
        help_text="The client (its id): the scope of an email, or whose external id it is.",
    )  # fmt: skip
    external_id = serializers.CharField(
        required=False, max_length=100, trim_whitespace=False,
        help_text="The collector's id of the referral, with ``client``. Not with ``email``.",
    )  # fmt: skip

    def validate(self, attrs: dict) -> dict:
        email, external_id = attrs.get("email"), attrs.get("external_id")
        if email is not None and external_id is not None:
            raise serializers.ValidationError("Give an email or an external id, not both.")
        try:
            if external_id is not None:
                attrs["person"] = Person.by_external_id(external_id, client=attrs.get("client"))
            elif email is not None:
                attrs["person"] = Person.by_email(email, client=attrs.get("client"))
            else:
                raise ErasureInvalid("Give an email, or a client and an external id.")
        except ErasureInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        return attrs


class ErasureReceiptSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)

    class Meta:
        model = ErasureReceipt
        fields = [
            "id", "identifier_kind", "identifier_hash", "client", "source", "requested_by",
            "created_at", "referrals", "ledger_items", "batch_entries", "attempts",
            "export_files", "unsent_batches", "sent_batches", "delivered_items",
        ]  # fmt: skip
        read_only_fields = fields
