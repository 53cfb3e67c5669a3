"""The interface every delivery channel offers: what a kind of delivery is, in one place.

A channel is one way of getting referrals to a client (real-time HTTP, SFTP files, FTPS
files). It declares the ``Delivery`` columns it owns (its settings; this step keeps them as
columns of ``Delivery``, see docs/ARCHITECTURE.md, "Channels"), which of them are secrets, how
the admin shows them, which the API requires, and it checks them, tests them and pins its
server. The engines (real-time, batch) and the surfaces (admin, API, services) ask the
registry (``deliveries.channels``) for a delivery's channel instead of asking its kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from deliveries.models import Delivery

# A field's problems, by field name (``deliveries.validation`` fills it).
Errors = dict[str, list[str]]


class ConnectionTestFailed(RuntimeError):
    """A test or a key fetch that did not succeed; the message says what happened."""


@dataclass(frozen=True)
class Fieldset:
    """One section of the admin's delivery form."""

    title: str
    # For staff: form fields (settings, ``clear_<secret>`` boxes, ``headers_text``).
    fields: tuple[str, ...]
    # For client users, read-only: where their data goes, never how we log in (no login
    # name, no secret, no pinned key).
    client_fields: tuple[str, ...]
    description: str = ""

    def admin(self, *, client_user: bool) -> tuple[str, dict]:
        options: dict = {"fields": list(self.client_fields if client_user else self.fields)}
        if self.description:
            options["description"] = self.description
        return (self.title, options)


@dataclass(frozen=True)
class PinOffer:
    """What a server presents, for an account manager to confirm and pin."""

    what: str  # "SSH host key", "TLS certificate"
    fingerprint: str
    detail: str
    pin: str  # the value the channel's pin field takes


class Channel:
    """One kind of delivery. Subclasses set the class attributes and the two methods."""

    kind: ClassVar[str]  # a ``Delivery.Kind`` value
    label: ClassVar[str]  # its ``Delivery.Kind`` label
    description: ClassVar[str]  # one line, for the admin's "which kind?" page
    batch: ClassVar[bool]  # files on a schedule (the batch engine), else real time
    # The Delivery columns it owns that a user sets (admin form, API body), in API order.
    settings: ClassVar[tuple[str, ...]]
    # The columns it owns that the platform sets (shown, never written by a user).
    managed: ClassVar[tuple[str, ...]] = ()
    secrets: ClassVar[tuple[str, ...]]  # encrypted, write-only, never shown
    made_on_save: ClassVar[tuple[str, ...]] = ()  # secrets made when left empty, shown once
    # The API's body for this kind (``deliveries/api/schema.py``): what a creation must
    # give, the setting whose value decides what else is needed, the secrets never sent
    # empty, the secrets of which a creation gives one at least, and the rules no schema
    # keyword says (the body's description).
    required: ClassVar[tuple[str, ...]]
    api_choice: ClassVar[str]
    api_non_empty: ClassVar[tuple[str, ...]] = ()
    api_one_of_on_create: ClassVar[tuple[str, ...]] = ()
    api_rules: ClassVar[str] = ""
    fieldsets: ClassVar[tuple[Fieldset, ...]]
    pin_field: ClassVar[str | None] = None  # the setting that pins the server, if any
    pin_action: ClassVar[str] = ""  # the admin's button that fetches what to pin

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.settings, *self.managed)

    @property
    def writable_secrets(self) -> tuple[str, ...]:
        return tuple(name for name in self.secrets if name in self.settings)

    def validate(self, delivery: Delivery, errors: Errors) -> None:
        """Add the problems of the channel's settings to ``errors``: the checks its send
        uses, so a setting saved is one the send can use."""
        raise NotImplementedError

    def before_save(self, delivery: Delivery) -> None:
        """Fill what the platform makes for a valid delivery (a signing secret)."""

    def test_connection(self, delivery: Delivery) -> str:
        """What the admin's and the API's "test" button runs: a sentence on success, else
        ``ConnectionTestFailed`` saying what happened."""
        raise NotImplementedError

    def fetch_pin(self, delivery: Delivery) -> PinOffer:
        """What the server presents now (connects out); ``ConnectionTestFailed`` on error."""
        raise ConnectionTestFailed(f"{self.label} pins no server key.")

    def __repr__(self) -> str:
        return f"<channel {self.kind}>"
