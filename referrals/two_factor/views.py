"""The login's two steps, and the page where a user turns two-factor login on or off.

Step one (``PasswordStepView``, the admin's login page) checks the password. A user who needs
no code is logged in as before; the others are remembered in the session as *pending*, not
logged in, and sent to step two: ``code`` (a confirmed device) or ``enrol`` (required, no
device yet: the key is shown and the first code confirms it). Only then is the user logged in,
with the device recorded in the session (django-otp). Wrong passwords and wrong codes both
count towards django-axes' lockout of that username from that address.
"""

from __future__ import annotations

import time

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp.plugins.otp_totp.models import TOTPDevice

from referrals.tenancy import is_client_user
from referrals.two_factor.forms import CodeForm
from referrals.two_factor.services import (
    confirmed_device,
    device_confirm,
    device_verify,
    devices_reset,
    enrolment_device,
    qr_svg,
    second_step_needed,
    secret_text,
    session_verified,
    two_factor_required,
)

_PENDING = "two_factor_pending"
WRONG_CODE = "That code is not right, or was used already: enter the code your app shows now."
THROTTLED = "Too many wrong codes in a row: wait a few seconds, then enter the code shown then."


class PasswordStepView(LoginView):
    """The admin's login page: the password, then (when needed) the code on the next page."""

    def form_valid(self, form):
        user = form.get_user()
        if not second_step_needed(user):
            return super().form_valid(form)
        self.request.session[_PENDING] = {
            "user": user.pk,
            "backend": user.backend,
            "next": self.get_success_url(),
            "since": time.time(),
        }
        step = "code" if confirmed_device(user) else "enrol"
        return redirect(f"two_factor:{step}")


def _pending(request: HttpRequest):
    """The user who passed the password step in this session, their backend and where they
    were going; ``None`` when there is none or it is older than TWO_FACTOR_STEP_SECONDS."""
    pending = request.session.get(_PENDING)
    if not pending or time.time() - pending["since"] > settings.TWO_FACTOR_STEP_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        return None
    return user, pending["backend"], pending["next"]


def _log_in_again(request: HttpRequest) -> HttpResponse:
    request.session.pop(_PENDING, None)
    messages.info(request, "Your login timed out before the code was entered: log in again.")
    return redirect("admin:login")


def _credentials(user) -> dict:
    return {"username": user.get_username()}


def _refused(request: HttpRequest, user, form: CodeForm) -> HttpResponse | None:
    """A wrong code counts as a failed login (django-axes); the lockout page once the limit
    is reached, else ``None`` with the error on the form."""
    user_login_failed.send(sender=__name__, credentials=_credentials(user), request=request)
    if getattr(request, "axes_locked_out", False):
        return locked_out(request, None, _credentials(user))
    _wrong(form, WRONG_CODE)
    return None


def _wrong(form: CodeForm, message: str) -> None:
    """The error on the form, and the field emptied for the next code."""
    form.add_error("token", message)
    form.data = {**form.data.dict(), "token": ""}


def _checked(request: HttpRequest, user, device: TOTPDevice, form: CodeForm, *, confirm: bool):
    """``True`` when the posted code is good; else a lockout response or ``False`` (the
    reason on the form)."""
    if not AxesProxyHandler.is_allowed(request, _credentials(user)):
        return locked_out(request, None, _credentials(user))
    if not form.is_valid():
        return False
    allowed, _ = device.verify_is_allowed()
    if not allowed:  # django-otp's back-off: the code was not even looked at
        _wrong(form, THROTTLED)
        return False
    token = form.cleaned_data["token"]
    check = device_confirm if confirm else device_verify
    if check(device=device, token=token):
        return True
    lockout = _refused(request, user, form)
    return lockout if lockout is not None else False


def _logged_in(request: HttpRequest, user, backend: str, device: TOTPDevice, next_url: str):
    request.session.pop(_PENDING, None)
    auth_login(request, user, backend)
    session_verified(request, device)
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("admin:index")
    return redirect(next_url)


def _page(request: HttpRequest, template: str, status: int = 200, **context) -> HttpResponse:
    return render(request, template, {**admin.site.each_context(request), **context}, status=status)


@sensitive_post_parameters("token")
@never_cache
def code(request: HttpRequest) -> HttpResponse:
    pending = _pending(request)
    if pending is None:
        return _log_in_again(request)
    user, backend, next_url = pending
    device = confirmed_device(user)
    if device is None:
        return redirect("two_factor:enrol")
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        result = _checked(request, user, device, form, confirm=False)
        if result is True:
            return _logged_in(request, user, backend, device, next_url)
        if isinstance(result, HttpResponse):
            return result
    return _page(request, "admin/two_factor/code.html", title="Two-factor login", form=form,
                 username=user.get_username())  # fmt: skip


@sensitive_post_parameters("token")
@never_cache
def enrol(request: HttpRequest) -> HttpResponse:
    pending = _pending(request)
    if pending is None:
        return _log_in_again(request)
    user, backend, next_url = pending
    if confirmed_device(user) is not None:
        return redirect("two_factor:code")
    if not two_factor_required(user):  # nothing to enrol for: log in again with the password
        return _log_in_again(request)
    device = enrolment_device(user)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        result = _checked(request, user, device, form, confirm=True)
        if result is True:
            messages.success(request, "Two-factor login is set up: use your app at every login.")
            return _logged_in(request, user, backend, device, next_url)
        if isinstance(result, HttpResponse):
            return result
    return _page(request, "admin/two_factor/enrol.html", title="Set up two-factor login",
                 form=form, username=user.get_username(), qr=qr_svg(device),
                 secret=secret_text(device))  # fmt: skip


@sensitive_post_parameters("token")
@never_cache
def account(request: HttpRequest) -> HttpResponse:
    """A logged-in user's own page: set up an app (optional for most client users) or turn
    it off again where nobody requires it."""
    user = request.user
    device = confirmed_device(user)
    required = two_factor_required(user)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"]
        if device is None:
            new_device = enrolment_device(user)
            if device_confirm(device=new_device, token=token):
                session_verified(request, new_device)
                messages.success(request, "Two-factor login is on: each login asks for a code.")
                return redirect("two_factor:account")
        elif not required and device_verify(device=device, token=token):
            devices_reset(user)
            messages.success(request, "Two-factor login is off: you log in with your password.")
            return redirect("two_factor:account")
        _wrong(form, WRONG_CODE)
    context = {
        "title": "Two-factor login",
        "form": form,
        "device": device,
        "required": required,
        # Who can reset a lost device: account managers manage client users, superusers staff.
        "resetter": "An account manager" if is_client_user(user) else "A superuser",
    }
    if device is None:
        pending_device = enrolment_device(user)
        context.update(qr=qr_svg(pending_device), secret=secret_text(pending_device))
    return _page(request, "admin/two_factor/account.html", **context)


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout page (AXES_LOCKOUT_CALLABLE), in the admin's look."""
    request.session.pop(_PENDING, None)
    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    return _page(request, "admin/two_factor/locked_out.html", status=429, title="Login locked",
                 minutes=minutes, limit=settings.AXES_FAILURE_LIMIT)  # fmt: skip
