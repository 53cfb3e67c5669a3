"""Logging in through both steps in tests: a test client whose shortcuts complete the second
step, and an authenticator app that turns a device's key into codes (django-otp's own TOTP)."""

from __future__ import annotations

import base64
import time

from django.contrib.auth import authenticate
from django.http import HttpRequest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from referrals.two_factor.services import DEVICE_NAME, confirmed_device, second_step_needed


class TwoStepClient(Client):
    """Django's test client, for tests about something else than logging in.

    ``force_login`` skips the password, as in Django; here it also skips the code, giving a
    user who needs one a confirmed device and recording it in the session as the code page
    does. ``login`` checks the password through every backend with a request, as the login
    page does (django-axes refuses to count an attempt without one)."""

    def login(self, **credentials) -> bool:
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = "127.0.0.1"
        user = authenticate(request, **credentials)
        if user is None:
            return False
        self._login(user, user.backend)
        return True

    def _login(self, user, backend=None) -> None:
        super()._login(user, backend)
        if second_step_needed(user):
            device = confirmed_device(user) or TOTPDevice.objects.create(
                user=user, name=DEVICE_NAME, confirmed=True
            )
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()


def code_of(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code ``device`` accepts now (or ``steps_ahead`` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


class Authenticator:
    """A person's authenticator app: keys added by username (as typed from the enrolment
    page), codes read from it. It never gives one code twice: the platform refuses a code
    used before, so a second login within 30 seconds takes the next step's code (accepted
    for clock drift) or waits for it."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._last_step: dict[str, int] = {}

    def add(self, username: str, key_text: str) -> None:
        key = key_text.replace(" ", "")
        self._keys[username] = base64.b32decode(key + "=" * (-len(key) % 8))
        self._last_step.pop(username, None)

    def knows(self, username: str) -> bool:
        return username in self._keys

    def wrong_code(self, username: str) -> str:
        """A code the app does not show now, nor one step either side."""
        totp = TOTP(self._keys[username])
        near = set()
        for step in (-1, 0, 1):
            totp.time = time.time() + step * totp.step
            near.add(totp.token())
        return f"{next(n for n in range(1_000_000) if n not in near):06d}"

    def code(self, username: str) -> str:
        totp = TOTP(self._keys[username])
        step = max(totp.t(), self._last_step.get(username, -1) + 1)
        while step > totp.t() + 1:
            time.sleep(1)
        self._last_step[username] = step
        totp.time = step * totp.step
        return f"{totp.token():06d}"
