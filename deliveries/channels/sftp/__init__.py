"""SFTP files: batches uploaded over SSH, the server's host key pinned (no auto-add)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deliveries.channels.base import ConnectionTestFailed, Errors, Fieldset, PinOffer
from deliveries.channels.batch import (
    BATCH_FIELDSETS,
    FILE_FORMAT,
    SCHEDULE,
    SERVER,
    WRITE_ONLY,
    BatchChannel,
)
from deliveries.transports import sftp
from deliveries.transports.base import TransportError
from deliveries.validation import sftp_login_errors

if TYPE_CHECKING:
    from deliveries.models import Delivery

_SERVER_FIELDS = (
    "host", "port", "username", "password", "clear_password", "private_key",
    "clear_private_key", "passphrase", "clear_passphrase", "remote_dir", "host_key",
)  # fmt: skip


class SftpChannel(BatchChannel):
    kind = "sftp"
    label = "SFTP files"
    description = "CSV files on a schedule, uploaded over SSH; the server's host key is pinned."
    settings = (*SERVER, "private_key", "passphrase", "host_key", *FILE_FORMAT, *SCHEDULE)
    secrets = ("password", "private_key", "passphrase")
    required = ("host", "username", "host_key")
    fieldsets = (
        Fieldset("Server (SFTP)", _SERVER_FIELDS, ("host", "port", "remote_dir"), WRITE_ONLY),
        *BATCH_FIELDSETS,
    )
    pin_action = "Fetch host key"
    pin_field = "host_key"
    transport = sftp
    default_port = 22

    def validate_login(self, delivery: Delivery, errors: Errors) -> None:
        sftp_login_errors(delivery, errors)

    def fetch_pin(self, delivery: Delivery) -> PinOffer:
        try:
            key = sftp.fetch_host_key(delivery.host, self.port(delivery))
        except TransportError as exc:
            raise ConnectionTestFailed(str(exc)) from None
        return PinOffer("SSH host key", key.fingerprint, key.key_type, key.openssh)


CHANNEL = SftpChannel()
