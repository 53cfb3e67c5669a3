"""Who must give a code, and the user's authenticator device (one TOTP device per user)."""

from __future__ import annotations

import base64

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from referrals.tenancy import user_client

DEVICE_NAME = "Authenticator app"


def two_factor_required(user: AbstractBaseUser) -> bool:
    """Staff who see every client (account managers, superusers) always; a client user when
    their client requires it."""
    client = user_client(user)
    if client is None:
        return bool(user.is_staff or user.is_superuser)
    return client.require_two_factor


def confirmed_device(user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def second_step_needed(user: AbstractBaseUser) -> bool:
    """A code is asked at login: required for the user, or turned on by them."""
    return two_factor_required(user) or confirmed_device(user) is not None


def enrolment_device(user: AbstractBaseUser) -> TOTPDevice:
    """The unconfirmed device being set up (made with a new random key on first call); the
    same one until it is confirmed, so reloading the page keeps the key the app scanned."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


@transaction.atomic
def device_verify(*, device: TOTPDevice, token: str) -> bool:
    """Whether ``token`` is a fresh code of ``device``: django-otp allows one step of clock
    drift, refuses a code used before (replay) and backs off after wrong codes. The device is
    locked for the check, so two requests cannot both use one code."""
    return django_otp.verify_token(device.user, device.persistent_id, token.strip()) is not None


@transaction.atomic
def device_confirm(*, device: TOTPDevice, token: str) -> bool:
    """Confirm the device being set up with a first code; it replaces any earlier device."""
    if not device_verify(device=device, token=token):
        return False
    TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
    device.confirmed = True
    return True


def devices_reset(user: AbstractBaseUser) -> int:
    """Forget the user's devices: they enrol again at their next login if a code is required,
    else they log in with their password alone. Returns how many were removed."""
    deleted, _ = TOTPDevice.objects.filter(user_id=user.pk).delete()
    return deleted


def session_verified(request: HttpRequest, device: TOTPDevice) -> None:
    """Mark the logged-in session as having passed the second step with ``device``."""
    django_otp.login(request, device)


def secret_text(device: TOTPDevice) -> str:
    """The key as authenticator apps take it typed in: base32, in groups of four."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URI as an inline SVG QR code: paths on white, so it scans in
    the dark theme too, and no Pillow."""
    factory = qrcode.image.svg.SvgPathFillImage
    image = qrcode.make(device.config_url, image_factory=factory, box_size=8)
    return image.to_string(encoding="unicode")
