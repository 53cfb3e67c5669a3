"""What the file channels (SFTP, FTPS) share: the batch engine's settings (file format,
schedule), their admin sections, and a session on the server through the channel's
transport (``deliveries/transports/``: one module per protocol, one ``connect``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings as django_settings

from deliveries.channels.base import Channel, ConnectionTestFailed, Errors, Fieldset, PinOffer
from deliveries.transports.base import FileSession, FileTarget, FileTransport, TransportError
from deliveries.validation import connection_errors, file_format_errors, schedule_errors

if TYPE_CHECKING:
    from deliveries.models import Delivery

SERVER = ("host", "port", "username", "password", "remote_dir")
FILE_FORMAT = (
    "file_name_template", "name_time_zone", "header", "bom", "delimiter", "quoting", "gzip",
    "max_rows_per_file", "marker", "send_empty",
)  # fmt: skip
SCHEDULE = (
    "schedule_kind", "schedule_every_minutes", "schedule_minute", "schedule_time",
    "schedule_weekday", "schedule_cron",
)  # fmt: skip
BATCH_SETTINGS = (*FILE_FORMAT, *SCHEDULE)
BATCH_FIELDSETS = (
    Fieldset("File", FILE_FORMAT, FILE_FORMAT),
    Fieldset("Schedule (in the client's time zone)", SCHEDULE, SCHEDULE),
)


def server_fieldset(protocol: str, fields: tuple[str, ...], client_fields: tuple[str, ...]):
    """A file channel's server section: its address, login and pin (secrets write-only)."""
    return Fieldset(f"Server ({protocol})", fields, client_fields,
                    "Secrets are write-only: never shown once saved.")  # fmt: skip


class BatchChannel(Channel):
    """A channel whose referrals go in files, on a schedule, through a file transport."""

    batch = True
    api_choice = "schedule_kind"
    api_rules = "schedule_cron: a valid five-field cron expression."
    managed = ("next_run_at",)  # the scheduler's (``deliveries.dispatch``)
    transport: ClassVar[FileTransport]
    default_port: ClassVar[int]

    def port(self, delivery: Delivery) -> int:
        return delivery.port or self.default_port

    def validate(self, delivery: Delivery, errors: Errors) -> None:
        connection_errors(delivery, errors)
        self.validate_login(delivery, errors)
        file_format_errors(delivery, errors)
        schedule_errors(delivery, errors)

    def validate_login(self, delivery: Delivery, errors: Errors) -> None:
        """The protocol's own checks: credentials, pins."""
        raise NotImplementedError

    def fetch_pin(self, delivery: Delivery) -> PinOffer:
        try:
            return self.server_pin(delivery)
        except TransportError as exc:
            raise ConnectionTestFailed(str(exc)) from None

    def server_pin(self, delivery: Delivery) -> PinOffer:
        """What the server presents now, through the transport (which raises its errors)."""
        raise NotImplementedError

    def target(self, delivery: Delivery) -> FileTarget:
        return FileTarget(
            host=delivery.host,
            port=self.port(delivery),
            username=delivery.username,
            password=delivery.password,
            private_key=delivery.private_key,
            passphrase=delivery.passphrase,
            remote_dir=delivery.remote_dir or ".",
            host_key=delivery.host_key,
            tls_mode=delivery.tls_mode,
            certificate_fingerprint=delivery.certificate_fingerprint,
            ca_file=django_settings.DELIVERY_CA_FILE,
        )

    def connect(self, delivery: Delivery) -> FileSession:
        """A session on the delivery's server, logged in as a run is (same pins)."""
        return self.transport.connect(self.target(delivery))

    def test_connection(self, delivery: Delivery) -> str:
        """Log in as a run would (same checks, same pins) and list the remote directory."""
        try:
            with self.connect(delivery) as session:
                names = session.listdir()
        except TransportError as exc:
            raise ConnectionTestFailed(f"Connection test failed: {exc}") from None
        shown = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
        return (
            f"Connected and logged in; the remote folder holds {len(names)} entries: {shown or '-'}"
        )
