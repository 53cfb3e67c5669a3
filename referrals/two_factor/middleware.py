"""A session that has not passed the second step is anonymous, wherever it is used."""

from __future__ import annotations

import functools

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from referrals.two_factor.services import second_step_needed


class TwoFactorMiddleware:
    """After django-otp's ``OTPMiddleware``: a logged-in user who needs a code and whose
    session holds no verified device is replaced by ``AnonymousUser``, so no admin page, no
    API call on the session and no docs page serves them. The login steps never log such a
    user in; this also covers sessions from before 2FA was required of them (a client that
    turned the requirement on, a deployment that added 2FA). API tokens do not go through
    sessions and are not affected (docs/SECURITY.md)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        user = request.user
        request.user = SimpleLazyObject(functools.partial(_checked, user))
        return self.get_response(request)


def _checked(user):
    if user.is_authenticated and not user.is_verified() and second_step_needed(user):
        anonymous = AnonymousUser()
        anonymous.otp_device = None
        anonymous.is_verified = lambda: False
        return anonymous
    return user
