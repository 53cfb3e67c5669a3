"""Signatures of real-time API deliveries, by the Standard Webhooks specification.

https://www.standardwebhooks.com/ — so a receiver verifies with any of its libraries. A secret
is ``whsec_`` + base64 of random bytes; the signature is base64(HMAC-SHA256(key, "{id}.{
timestamp}.{body}")). To rotate, a delivery signs with the new and the old secret for a while:
the header carries one signature per secret, and a receiver accepts any one that matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from secrets import token_bytes

PREFIX = "whsec_"
_NEW_KEY_BYTES = 32
# The specification asks for keys of 24 to 64 bytes.
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 24, 64
# Visible ASCII: the id travels in a header (no CR/LF injection) and in the signed text.
_MSG_ID = re.compile(r"[!-~]+")


def signing_secret_generate() -> str:
    return PREFIX + base64.b64encode(token_bytes(_NEW_KEY_BYTES)).decode("ascii")


def signing_secret_valid(secret: str) -> bool:
    return signing_secret_error(secret) is None


def signing_secret_error(secret: str) -> str | None:
    """Why ``secret`` cannot sign (the very check a send makes), and what a valid one looks
    like; None when it can."""
    try:
        _key(secret)
    except ValueError as exc:
        return (
            f"{exc} A valid one is {PREFIX} followed by the standard base64 of "
            f"{_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} random bytes (32 to 88 characters, as "
            "Standard Webhooks libraries make them); leave it empty and one is made for you "
            "and shown once."
        )
    return None


def webhook_headers(
    *, msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> list[tuple[str, str]]:
    """The three Standard Webhooks headers; one ``v1`` signature per secret, in order.

    No secrets, no headers: an unsigned request, rather than an empty signature header that
    receivers' libraries would reject as malformed.
    """
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("A webhook id is visible ASCII, without spaces.")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("A webhook timestamp is whole seconds since the epoch.")
    if not secrets:
        return []
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.digest(_key(secret), signed, hashlib.sha256)).decode()
        for secret in secrets
    )
    return [
        ("webhook-id", msg_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", signatures),
    ]


def _key(secret: str) -> bytes:
    # The prefix is required: it tells a signing secret from any other base64 at a glance.
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise ValueError(f"A signing secret starts with {PREFIX!r}.")
    encoded = secret[len(PREFIX) :]
    try:
        # Strict standard base64 (padding optional): the receivers' libraries decode with
        # b64decode, which would silently skip URL-safe "-" and "_" and get another key.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("A signing secret is base64 after its prefix.") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(
            f"A signing secret holds {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes of key."
        )
    return key
