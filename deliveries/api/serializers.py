from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.channels import (
    WRITABLE_SECRETS,
    all_settings,
    delivery_errors,
    kind_choices,
    kind_error,
)
from deliveries.models import Attempt, Batch, Delivery
from deliveries.setting_patterns import CLOCK, anchored
from deliveries.validation import DELIMITERS, NAME_TAKEN
from referrals.api.query import INT64_MAX
from referrals.models import Campaign, Client
from referrals.tenancy import scope_to_user
from rokt_platform.api_errors import Conflict
from rokt_platform.api_fields import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictModelSerializer,
)

# The secrets a caller writes (every channel's); write-only, never in an answer.
SECRETS = WRITABLE_SECRETS
# What every delivery has, each channel's settings (its secrets apart), then its state.
SETTINGS = (
    "id", "client", "name", "kind", "active", "paused_at", "paused_reason", "all_campaigns",
    "campaigns", "columns", "starts_at",
    *(name for name in all_settings() if name not in SECRETS),
    "previous_secret_until", "next_run_at", "last_success_at", "failing_since", "last_error",
    "created_at",
)  # fmt: skip
READ_ONLY = (
    "id", "paused_at", "previous_secret_until", "paused_reason", "next_run_at",
    "last_success_at", "failing_since", "last_error", "created_at",
)  # fmt: skip
# Kept by a PUT that does not give them: secrets are never shown, so a caller cannot send
# them back; the client and the start are where the delivery's ledger comes from.
KEPT_BY_REPLACE = ("client", "starts_at", *SECRETS)


@extend_schema_field({"type": "string", "pattern": anchored(CLOCK), "example": "06:00"})
class ClockTimeField(serializers.TimeField):
    """A time of day as ``HH:MM``, as it is typed, in and out (exactly: ``strptime`` would
    also take ``6:0``, which the schema's pattern refuses)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", input_formats=["%H:%M"], **kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str) or not CLOCK.fullmatch(value):
            self.fail("invalid", format="HH:MM")
        return super().to_internal_value(value)


def _json_field(name: str, schema: dict) -> type[serializers.JSONField]:
    """A JSON setting or answer, documented with its shape (DRF says only "any")."""
    return extend_schema_field(schema)(type(name, (serializers.JSONField,), {}))


def _objects_of(*names: str, description: str) -> dict:
    item = {"type": "object", "properties": {n: {"type": "string"} for n in names}}
    return {"type": "array", "items": item, "description": description}


ColumnsField = _json_field("ColumnsField", _objects_of(
    "source", "output", description="Ordered; empty: every standard column."))  # fmt: skip
HeadersField = _json_field("HeadersField", _objects_of(
    "name", "value", description="Sent with every request."))  # fmt: skip
HeaderPairsField = _json_field("HeaderPairsField", {
    "type": "array", "description": "[name, value] pairs, secrets redacted.",
    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
})  # fmt: skip
FilesField = _json_field("FilesField", {"type": "array", "items": {
    "type": "object", "properties": {"name": {"type": "string"}, "rows": {"type": "integer"},
                                     "bytes": {"type": "integer"}, "sha256": {"type": "string"}},
}})  # fmt: skip


class KindField(serializers.ChoiceField):
    """The offered kinds (an enum in the schema); "ftp" is answered with the message pointing
    to SFTP and FTPS rather than "not a valid choice"."""

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=kind_choices(), **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        problem = kind_error(data)
        if problem:
            raise serializers.ValidationError(problem)
        return super().to_internal_value(data)


class CampaignIdField(serializers.PrimaryKeyRelatedField):
    """A campaign by its id: a JSON integer, not a string or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= data <= INT64_MAX:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class ClientSlugField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


_SECRET = {"write_only": True, "required": False, "allow_blank": True, "trim_whitespace": False}


class DeliverySerializer(StrictModelSerializer):
    """Kind-specific settings in one object; secrets are write-only (``*_set`` says whether
    one is stored), and an omitted secret keeps the stored one."""

    client = ClientSlugField(slug_field="slug", queryset=Client.objects.all())
    kind = KindField()
    schedule_time = ClockTimeField(required=False, allow_null=True)
    # A choice, never trimmed: a tab is a delimiter, not white space to strip.
    delimiter = StrictChoiceField(choices=list(DELIMITERS.items()), required=False)
    campaigns = CampaignIdField(many=True, queryset=Campaign.objects.all(), required=False)
    columns = ColumnsField(required=False)
    headers = HeadersField(required=False)
    # Secrets are kept as typed, spaces included, as the admin's form keeps them.
    password = StrictCharField(**_SECRET)
    private_key = StrictCharField(**_SECRET)
    passphrase = StrictCharField(**_SECRET)
    auth_secret = StrictCharField(**_SECRET)
    signing_secret = StrictCharField(
        **_SECRET,
        help_text="Standard Webhooks: whsec_ and the base64 of 24 to 64 random bytes; anything "
        "else is refused. Omitted on creation, or sent empty: one is made and returned this "
        "once.",
    )  # fmt: skip
    password_set = serializers.SerializerMethodField()
    auth_secret_set = serializers.SerializerMethodField()
    private_key_set = serializers.SerializerMethodField()
    passphrase_set = serializers.SerializerMethodField()
    pending = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = (*SETTINGS, *SECRETS, "password_set", "private_key_set", "passphrase_set",
                  "auth_secret_set", "pending")  # fmt: skip
        read_only_fields = READ_ONLY
        validators: list = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:
            fields["client"].required = False  # a replace keeps it unless given
        request = self.context.get("request")
        if request is not None:
            fields["client"].queryset = scope_to_user(
                Client.objects.all(), request.user, client_path="pk"
            )
            fields["campaigns"].child_relation.queryset = scope_to_user(
                Campaign.objects.all(), request.user, client_path="client"
            )
        return fields

    def get_password_set(self, obj) -> bool:
        return bool(obj.password)

    def get_auth_secret_set(self, obj) -> bool:
        return bool(obj.auth_secret)

    def get_private_key_set(self, obj) -> bool:
        return bool(obj.private_key)

    def get_passphrase_set(self, obj) -> bool:
        return bool(obj.passphrase)

    def get_pending(self, obj) -> int:
        return obj.items.filter(status__in=["file", "pending", "sending", "failed"]).count()

    def validate(self, attrs):
        current = self.instance
        if current is not None:
            self._check_state(current, attrs)
            if not self.partial:
                attrs = {**replace_defaults(attrs), **attrs}
        campaigns = attrs.pop("campaigns", None)
        candidate = Delivery(**self._current())
        candidate.pk = current.pk if current else None
        for name, value in attrs.items():
            setattr(candidate, name, value)
        if campaigns is None and current is not None:
            campaigns = list(current.campaigns.all())
        refuse_unless_valid(delivery_errors(candidate, campaigns=campaigns or []))
        attrs["campaigns"] = campaigns
        return attrs

    def _check_state(self, current: Delivery, attrs: dict) -> None:
        """What the body may not change about the stored delivery: a 409, not a 400."""
        if "client" in attrs and attrs["client"] != current.client:
            raise Conflict({"client": ["A delivery stays with its client."]})
        if not self.partial:
            return
        if "kind" not in attrs:
            raise serializers.ValidationError(
                {"kind": [f"Give the delivery's kind ({current.kind}): it says which settings "
                          "the body holds."]}
            )  # fmt: skip
        if attrs["kind"] != current.kind:
            raise Conflict({"kind": [
                f"This delivery is {current.kind}; a PATCH keeps the kind. Replace the "
                "delivery (PUT, with every setting of the new kind) to change it."
            ]})  # fmt: skip

    def _current(self) -> dict:
        if self.instance is None:
            return {}
        names = [f.name for f in Delivery._meta.concrete_fields if f.name != "id"]
        return {name: getattr(self.instance, name) for name in names}


def replace_defaults(attrs: dict) -> dict:
    """What a PUT that omits a setting sets it to: the setting's default, as on creation
    (secrets, the client and the start are kept; see ``KEPT_BY_REPLACE``)."""
    defaults = {"campaigns": []}
    for name in SETTINGS:
        if name in READ_ONLY or name in KEPT_BY_REPLACE or name in attrs or name == "campaigns":
            continue
        defaults[name] = Delivery._meta.get_field(name).get_default()
    return defaults


def refuse_unless_valid(errors: dict[str, list[str]]) -> None:
    """400 naming each field; a name already taken, when it is the only problem, is a 409
    (the body is valid, the client's other delivery is in the way)."""
    if errors == {"name": [NAME_TAKEN]}:
        raise Conflict({"name": [NAME_TAKEN]})
    if errors:
        raise serializers.ValidationError(errors)


class ClientDeliverySerializer(serializers.ModelSerializer):
    """What a client user sees of their deliveries: where, when and how it goes; no secret,
    no login name, no pinned key."""

    client = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    schedule_time = ClockTimeField(read_only=True, allow_null=True)
    columns = ColumnsField(read_only=True)

    class Meta:
        model = Delivery
        fields = (
            "id", "client", "name", "kind", "active", "paused_at", "columns", "url",
            "http_method", "body_format", "host", "remote_dir", "file_name_template",
            "schedule_kind", "schedule_every_minutes", "schedule_minute", "schedule_time",
            "schedule_weekday", "schedule_cron",
            "next_run_at", "last_success_at", "failing_since", "last_error",
        )  # fmt: skip
        read_only_fields = fields


class BatchSerializer(serializers.ModelSerializer):
    delivery = serializers.PrimaryKeyRelatedField(read_only=True)
    files = FilesField(read_only=True)
    duration_seconds = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Null until the batch has been sent."
    )
    throughput_bytes_per_second = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Null until the batch has been sent."
    )

    class Meta:
        model = Batch
        fields = (
            "id", "delivery", "number", "kind", "status", "run_at", "range_start", "range_end",
            "rows", "files", "bytes", "sha256", "attempts", "next_attempt_at", "started_at",
            "finished_at", "duration_seconds", "throughput_bytes_per_second", "error",
            "requested_by",
        )  # fmt: skip
        read_only_fields = fields


class RunResultSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    detail = serializers.CharField()


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class AttemptSerializer(serializers.ModelSerializer):
    request_headers = HeaderPairsField(read_only=True)
    response_headers = HeaderPairsField(read_only=True)

    class Meta:
        model = Attempt
        fields = (
            "id", "delivery", "referral_id", "number", "test", "started_at", "method", "url",
            "request_headers", "request_body", "status_code", "response_headers",
            "response_body", "latency_ms", "error_class", "outcome", "reason",
        )  # fmt: skip
        read_only_fields = fields


REPLAY_CHOICES = (("referral",), ("not_delivered",), ("start", "end"))


class ReplaySerializer(serializers.Serializer):
    """Exactly one of: ``referral`` (an id), ``not_delivered: true``, or ``start`` and
    ``end`` (``end`` after ``start``); nothing else (``deliveries.api.schema`` publishes it as
    a oneOf)."""

    referral = StrictIntegerField(required=False, min_value=1, max_value=INT64_MAX)
    not_delivered = StrictBooleanField(required=False)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        given = set(self.initial_data) if isinstance(self.initial_data, dict) else set()
        if not any(given == set(choice) for choice in REPLAY_CHOICES):
            raise serializers.ValidationError(
                "Give exactly one of: referral, not_delivered (true), or start and end."
            )
        if given == {"not_delivered"} and attrs["not_delivered"] is not True:
            message = "Only true: replay what was not delivered."
            raise serializers.ValidationError({"not_delivered": [message]})
        if "start" in attrs and attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "The end must be after the start."})
        return attrs


class ReplayResultSerializer(serializers.Serializer):
    replayed = serializers.IntegerField()


class PauseSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=2000)


class RangeSerializer(serializers.Serializer):
    """A time range of stored referrals: ``start`` included, ``end`` excluded."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, attrs):
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "The end must be after the start."})
        return attrs


class RedeliveryResultSerializer(serializers.Serializer):
    referrals = serializers.IntegerField(help_text="Sent again, or in the redelivery batch.")
    batch = serializers.IntegerField(
        allow_null=True, help_text="Files: the number of the redelivery batch."
    )


class RotatedSecretSerializer(serializers.Serializer):
    signing_secret = serializers.CharField(help_text="The new secret, shown this once.")
    previous_secret_until = serializers.DateTimeField(
        help_text="Until then the previous secret signs every request too."
    )
