"""Real-time HTTP: each referral pushed to the client's endpoint as it is stored, signed
(Standard Webhooks), through the SSRF-guarded transport (``deliveries/transports/http.py``);
the real-time engine (``api_runs``) sends, retries and records attempts."""

from __future__ import annotations

from deliveries.api_runs import api_test_send
from deliveries.channels.base import Channel, ConnectionTestFailed, Errors, Fieldset
from deliveries.models import Delivery
from deliveries.signing import signing_secret_generate
from deliveries.transports import http
from deliveries.validation import api_errors

_ENDPOINT = (
    "url", "http_method", "body_format", "body_template", "headers_text", "auth_kind",
    "auth_username", "auth_secret", "clear_auth_secret", "auth_key_name", "signing_secret",
    "clear_signing_secret", "connect_timeout", "total_timeout", "accepted_statuses",
    "success_match", "success_match_value", "success_json_path", "max_in_flight",
    "pause_after_minutes",
)  # fmt: skip


class HttpChannel(Channel):
    kind = "api"
    label = "Real-time API"
    description = "Each referral pushed to the client's endpoint over HTTP as it is stored."
    batch = False
    settings = (
        "url", "http_method", "body_format", "body_template", "headers", "auth_kind",
        "auth_username", "auth_secret", "auth_key_name", "connect_timeout", "total_timeout",
        "accepted_statuses", "success_match", "success_match_value", "success_json_path",
        "signing_secret", "max_in_flight", "pause_after_minutes",
    )  # fmt: skip
    # The secret that signed until a rotation, and until when it still signs.
    managed = ("previous_signing_secret", "previous_secret_until")
    secrets = ("auth_secret", "signing_secret", "previous_signing_secret")
    made_on_save = ("signing_secret",)
    required = ("url",)
    api_choice = "auth_kind"
    api_rules = (
        "GET sends the columns as a query string (body_format query); POST and PUT send a "
        "body (json, form or xml). A body_template must be valid for its body_format, its "
        "placeholders the client's fields; xml output names are XML names. success_match "
        "other than none needs success_match_value (regex: a valid RE2 pattern; json_path: "
        "success_json_path too, such as $.result.status)."
    )
    fieldsets = (
        Fieldset(
            "Real-time API", _ENDPOINT,
            ("url", "http_method", "body_format", "body_template", "auth_kind"),
            "Each referral as it is stored, signed (Standard Webhooks). Secrets are "
            "write-only: never shown once saved.",
        ),
    )  # fmt: skip
    transport = http

    def validate(self, delivery: Delivery, errors: Errors) -> None:
        api_errors(delivery, errors)

    def before_save(self, delivery: Delivery) -> None:
        if not delivery.signing_secret:
            delivery.signing_secret = signing_secret_generate()

    def test_connection(self, delivery: Delivery) -> str:
        """Send a test referral as live delivery would (same rules, same SSRF guard)."""
        attempt = api_test_send(delivery)
        answer = attempt.status_code or attempt.error_class
        latency = attempt.latency_ms or 0
        if attempt.outcome != "delivered":
            raise ConnectionTestFailed(
                f"Test referral not delivered ({attempt.outcome}): {answer} in {latency:.0f} ms: "
                f"{attempt.reason}"
            )
        return f"Test referral sent: {answer} in {latency:.0f} ms, {attempt.outcome}"


CHANNEL = HttpChannel()
