"""The registry of delivery channels: one line per channel, in the order the admin offers
them. A channel lives in its own folder (``deliveries/channels/<kind>/``) and exposes
``CHANNEL``; everything outside asks ``channel_for(delivery.kind)``, never the kind itself."""

from __future__ import annotations

from collections import defaultdict

from deliveries.channels import ftps, http, sftp
from deliveries.channels.base import Channel, Errors
from deliveries.validation import PLAIN_FTP, campaign_errors, name_errors

CHANNELS: dict[str, Channel] = {
    channel.kind: channel for channel in (http.CHANNEL, sftp.CHANNEL, ftps.CHANNEL)
}
BATCH_KINDS = tuple(kind for kind, channel in CHANNELS.items() if channel.batch)
REALTIME_KINDS = tuple(kind for kind in CHANNELS if kind not in BATCH_KINDS)
# Every channel's secret columns; and those a user writes (the admin form, the API body).
SECRETS = tuple(dict.fromkeys(s for c in CHANNELS.values() for s in c.secrets))
WRITABLE_SECRETS = tuple(dict.fromkeys(s for c in CHANNELS.values() for s in c.writable_secrets))
BATCH_SECRETS = tuple(dict.fromkeys(s for k in BATCH_KINDS for s in CHANNELS[k].secrets))


def channel_for(kind: str) -> Channel:
    """The channel of ``kind``; ``KeyError`` for a kind no channel has (see ``kind_error``)."""
    return CHANNELS[kind]


def kind_choices() -> list[tuple[str, str]]:
    return [(kind, channel.label) for kind, channel in CHANNELS.items()]


def all_settings() -> tuple[str, ...]:
    """Every channel's user settings, once each, in registry order."""
    return tuple(dict.fromkeys(name for c in CHANNELS.values() for name in c.settings))


def kind_error(kind: str) -> str | None:
    if kind.strip().lower() in ("ftp", "ftpes-off", "plain ftp"):
        return PLAIN_FTP
    if kind not in CHANNELS:
        *others, last = CHANNELS
        return f"Unknown kind {kind!r}: choose {', '.join(others)} or {last}."
    return None


def delivery_errors(delivery, *, campaigns=None) -> dict[str, list[str]]:
    """Problems with ``delivery`` (unsaved settings), by field name: its name, its
    channel's settings, its campaigns. Every surface (admin, API, services) saves through it."""
    problem = kind_error(delivery.kind)
    if problem:
        return {"kind": [problem]}
    errors: Errors = defaultdict(list)
    name_errors(delivery, errors)
    channel_for(delivery.kind).validate(delivery, errors)
    campaign_errors(delivery, campaigns, errors)
    return {field: messages for field, messages in errors.items() if messages}
