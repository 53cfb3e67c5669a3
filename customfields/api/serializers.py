from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from customfields.models import CustomField
from customfields.services import CustomFieldConflict, custom_field_save
from customfields.validation import custom_field_errors, sent_value_errors
from referrals.models import Client
from referrals.tenancy import scope_to_user
from rokt_platform.api_errors import Conflict
from rokt_platform.api_fields import StrictModelSerializer

FIELDS = (
    "id", "client", "name", "kind", "source", "rules", "empty_default", "no_match",
    "no_match_default", "date_output", "date_pattern", "time_zone", "template", "constant",
    "case", "algorithm", "created_at", "updated_at",
)  # fmt: skip


class _ClientSlugField(serializers.SlugRelatedField):
    """A client's slug, as text only (the schema says so)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CustomFieldSerializer(StrictModelSerializer):
    """One definition. The request shapes per kind are published by ``customfields.api.schema``
    from the same constants the validation uses."""

    client = _ClientSlugField(slug_field="slug", queryset=Client.objects.all())

    class Meta:
        model = CustomField
        fields = FIELDS
        read_only_fields = ("id", "created_at", "updated_at")
        validators: list = []  # the engine's validation covers names, clashes included

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, serializers.CharField):
            # Text is kept as sent: a name or source is exact, a constant's spaces are meant.
            kwargs["trim_whitespace"] = False
        return field_class, kwargs

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:  # a client slug outside the caller's scope does not exist
            fields["client"].queryset = scope_to_user(
                Client.objects.all(), request.user, client_path="pk"
            )
        return fields

    def validate(self, attrs):
        candidate = CustomField(**{**self._current(), **attrs})
        if self.instance is not None:
            candidate.pk = self.instance.pk
            if attrs.get("client", self.instance.client) != self.instance.client:
                raise Conflict({"client": ["A custom field stays with its client."]})
        others = CustomField.objects.filter(client=candidate.client)
        errors = custom_field_errors(candidate, others=others)
        # A partial update whose values are sound on their own (what its schema says) but do
        # not fit the stored definition meets a state it cannot change alone.
        if errors and (
            errors.only_conflicts
            or (self.partial and not sent_value_errors(attrs, kind=candidate.kind))
        ):
            raise Conflict(dict(errors))
        if errors:
            raise serializers.ValidationError(dict(errors))
        return attrs

    # Saved through the service, which validates again under the client's lock: of two
    # concurrent saves that are only valid apart, the second gets a 400.
    def create(self, validated_data) -> CustomField:
        return _saved(CustomField(**validated_data))

    def update(self, instance: CustomField, validated_data) -> CustomField:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return _saved(instance)

    def _current(self) -> dict:
        if self.instance is None:
            return {}
        return {name: getattr(self.instance, name) for name in FIELDS
                if name not in {"id", "created_at", "updated_at"}}  # fmt: skip


def _saved(field: CustomField) -> CustomField:
    try:
        return custom_field_save(field)
    except CustomFieldConflict as exc:
        raise Conflict(exc.message_dict) from None
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from None


class PreviewRequestSerializer(CustomFieldSerializer):
    sample = serializers.JSONField(required=False, help_text="Referral fields to render.")

    class Meta(CustomFieldSerializer.Meta):
        fields = (*FIELDS, "sample")

    def validate(self, attrs):
        sample = attrs.pop("sample", None)
        attrs = super().validate(attrs)
        attrs["sample"] = sample
        return attrs


class PreviewRowSerializer(serializers.Serializer):
    referral_id = serializers.IntegerField()
    external_id = serializers.CharField()
    value = serializers.CharField()


class PreviewResponseSerializer(serializers.Serializer):
    latest = PreviewRowSerializer(many=True)
    sample = serializers.CharField(required=False)
