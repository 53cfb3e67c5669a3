"""Secrets at rest: passwords, private keys, tokens and signing secrets, encrypted with Fernet.

Keys come from ``ROKT_ENCRYPTION_KEYS`` (comma-separated Fernet keys, the first encrypts, all
decrypt, so a key is rotated by putting a new one first and re-saving). Without it, one key
is derived from ``SECRET_KEY`` (HKDF), which keeps the one-command demo free of set-up; a
deployment sets its own keys so that a leaked ``SECRET_KEY`` alone does not open the secrets.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


class SecretUnreadable(RuntimeError):
    """A stored secret that none of the configured keys decrypts."""


@cache
def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.ENCRYPTION_KEYS if key.strip()]
    if not keys:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"rokt-platform", info=b"secrets at rest"
        ).derive(settings.SECRET_KEY.encode())
        keys = [base64.urlsafe_b64encode(derived).decode()]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "ROKT_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64 bytes; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'`)."
        ) from exc


def encrypt(plain: str) -> str:
    if not plain:
        return ""
    return PREFIX + _fernet().encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise SecretUnreadable("a stored secret is not encrypted")
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret does not decrypt with ROKT_ENCRYPTION_KEYS (was a key removed?)"
        ) from None


class EncryptedTextField(models.TextField):
    """Text stored encrypted; the model attribute holds the plain text, the column ciphertext.

    Never shown again once saved: admin forms and API serializers treat these fields as
    write-only (see ``deliveries.forms`` and ``deliveries.api.serializers``).
    """

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else ""
