"""FTPS files: batches uploaded over FTP with TLS (explicit or implicit), the data channel
protected, the certificate verified by CAs or pinned by its fingerprint."""

from __future__ import annotations

from deliveries.channels.base import Errors, PinOffer
from deliveries.channels.batch import (
    BATCH_FIELDSETS,
    BATCH_SETTINGS,
    SERVER,
    BatchChannel,
    server_fieldset,
)
from deliveries.models import Delivery
from deliveries.transports import ftps
from deliveries.validation import ftps_login_errors

_SERVER_FIELDS = (
    "host", "port", "username", "password", "clear_password", "remote_dir", "tls_mode",
    "certificate_fingerprint",
)  # fmt: skip
IMPLICIT_PORT = 990


class FtpsChannel(BatchChannel):
    kind = "ftps"
    label = "FTPS files"
    description = (
        "CSV files on a schedule, uploaded over FTP with TLS; the certificate is verified or "
        "pinned."
    )
    settings = (*SERVER, "tls_mode", "certificate_fingerprint", *BATCH_SETTINGS)
    secrets = ("password",)
    required = ("host", "username", "password")
    api_non_empty = ("password",)  # it logs in with a password: one sent is never empty
    fieldsets = (
        server_fieldset("FTPS", _SERVER_FIELDS, ("host", "port", "remote_dir", "tls_mode")),
        *BATCH_FIELDSETS,
    )  # fmt: skip
    pin_action = "Fetch certificate"
    pin_field = "certificate_fingerprint"
    transport = ftps
    default_port = 21

    def port(self, delivery: Delivery) -> int:
        if delivery.port:
            return delivery.port
        return IMPLICIT_PORT if delivery.tls_mode == "implicit" else self.default_port

    def validate_login(self, delivery: Delivery, errors: Errors) -> None:
        ftps_login_errors(delivery, errors)

    def server_pin(self, delivery: Delivery) -> PinOffer:
        cert = ftps.fetch_certificate(delivery.host, self.port(delivery), delivery.tls_mode)
        detail = f"{cert.subject}, issued by {cert.issuer}, valid until {cert.not_after}"
        return PinOffer("TLS certificate", cert.fingerprint, detail, cert.fingerprint)


CHANNEL = FtpsChannel()
