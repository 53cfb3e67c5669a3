"""SFTP files: batches uploaded over SSH, the server's host key pinned (no auto-add)."""

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
from deliveries.transports import sftp
from deliveries.validation import sftp_login_errors

_SERVER_FIELDS = (
    "host", "port", "username", "password", "clear_password", "private_key",
    "clear_private_key", "passphrase", "clear_passphrase", "remote_dir", "host_key",
)  # fmt: skip


class SftpChannel(BatchChannel):
    kind = "sftp"
    label = "SFTP files"
    description = "CSV files on a schedule, uploaded over SSH; the server's host key is pinned."
    settings = (*SERVER, "private_key", "passphrase", "host_key", *BATCH_SETTINGS)
    secrets = ("password", "private_key", "passphrase")
    required = ("host", "username", "host_key")
    api_one_of_on_create = ("password", "private_key")
    api_rules = (
        "A password or a private_key (OpenSSH or PEM, with its passphrase if encrypted). "
        f"{BatchChannel.api_rules}"
    )
    fieldsets = (
        server_fieldset("SFTP", _SERVER_FIELDS, ("host", "port", "remote_dir")),
        *BATCH_FIELDSETS,
    )
    pin_action = "Fetch host key"
    pin_field = "host_key"
    transport = sftp
    default_port = 22

    def validate_login(self, delivery: Delivery, errors: Errors) -> None:
        sftp_login_errors(delivery, errors)

    def server_pin(self, delivery: Delivery) -> PinOffer:
        key = sftp.fetch_host_key(delivery.host, self.port(delivery))
        return PinOffer("SSH host key", key.fingerprint, key.key_type, key.openssh)


CHANNEL = SftpChannel()
