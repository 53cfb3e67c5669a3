"""Two-factor login (TOTP) and login lockouts, through the login pages as a browser posts them.

Codes come from django-otp's own TOTP over the device's key (tests/two_factor.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from referrals.roles import client_user_create
from referrals.two_factor.views import WRONG_CODE
from tests.conftest import PASSWORD, api_client_for
from tests.processes import ROOT
from tests.two_factor import Authenticator, TwoStepClient, code_of

LOGIN = "/admin/login/?next=/admin/referrals/referral/"
CODE = "/admin/two-factor/code/"
ENROL = "/admin/two-factor/enrol/"
ACCOUNT = "/admin/two-factor/"


def password_step(client, username: str, password: str = PASSWORD):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/referrals/referral/"}
    )


def enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)


def shows_admin(client) -> bool:
    return client.get("/admin/").status_code == 200


def body(response) -> str:
    return response.content.decode()


def test_a_manager_with_a_device_needs_the_code_before_any_admin_page_or_api_call(client, manager):
    device = enrolled(manager)
    response = password_step(client, "manager")
    assert response.status_code == 302 and response.url == CODE

    # Half-way: neither the admin, nor the API on the session, nor the docs page.
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/referrals/referral/").url.startswith("/admin/login/")
    assert client.get("/api/v1/referrals/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code == 302

    page = body(client.get(CODE))
    assert "6-digit code" in page and "manager" in page
    response = client.post(CODE, {"token": code_of(device)})
    assert response.status_code == 302 and response.url == "/admin/referrals/referral/"
    assert shows_admin(client)
    assert client.get("/api/v1/referrals/").status_code == 200


def test_a_manager_without_a_device_enrols_with_the_key_shown_and_is_then_logged_in(
    client, manager
):
    response = password_step(client, "manager")
    assert response.url == ENROL
    assert not shows_admin(client)

    page = body(client.get(ENROL))
    assert "<svg" in page  # the QR code, inline
    key = re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', page).group(1)
    assert body(client.get(ENROL)).count(key) == 1  # reloading keeps the key the app took
    app = Authenticator()
    app.add("manager", key)

    response = client.post(ENROL, {"token": app.code("manager")})
    assert response.status_code == 302
    assert shows_admin(client)
    assert TOTPDevice.objects.get(user=manager).confirmed

    # The next login asks for a code of that app.
    client.logout()
    assert password_step(client, "manager").url == CODE
    client.post(CODE, {"token": app.code("manager")})
    assert shows_admin(client)


def test_a_client_user_without_two_factor_logs_in_with_the_password_alone(client, user_a):
    response = password_step(client, "alice")
    assert response.status_code == 302 and response.url == "/admin/referrals/referral/"
    assert shows_admin(client)


def test_a_client_whose_manager_requires_two_factor_makes_its_users_enrol(client, user_a, client_a):
    client_a.require_two_factor = True
    client_a.save()
    assert password_step(client, "alice").url == ENROL
    assert not shows_admin(client)


def test_a_session_from_before_the_requirement_no_longer_reaches_the_admin(
    client, user_a, client_a
):
    client.force_login(user_a)
    assert shows_admin(client)
    client_a.require_two_factor = True
    client_a.save()
    response = client.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_the_requirement_is_a_box_on_the_clients_admin_page(client, manager, client_a):
    client.force_login(manager)
    url = f"/admin/referrals/client/{client_a.pk}/change/"
    assert 'name="require_two_factor"' in body(client.get(url))
    form = {"name": client_a.name, "slug": client_a.slug, "time_zone": client_a.time_zone,
            "active": "on", "require_two_factor": "on", "retention_action": "anonymise",
            **_empty_inlines(client, url)}  # fmt: skip
    response = client.post(url, form)
    assert response.status_code == 302, body(response)[:3000]
    client_a.refresh_from_db()
    assert client_a.require_two_factor


def _empty_inlines(client, url: str) -> dict[str, str]:
    """The management forms of the page's inlines, holding no rows."""
    page = body(client.get(url))
    data = {}
    for prefix in re.findall(r'name="([\w-]+)-TOTAL_FORMS"', page):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_a_wrong_code_says_so_and_the_right_one_still_logs_in(client, manager):
    device = enrolled(manager)
    password_step(client, "manager")
    wrong = f"{(int(code_of(device)) + 1) % 1_000_000:06d}"
    response = client.post(CODE, {"token": wrong})
    assert response.status_code == 200 and WRONG_CODE in body(response)
    response = client.post(CODE, {"token": "12ab"})
    assert "6-digit code" in body(response)
    assert not shows_admin(client)

    time.sleep(1.1)  # django-otp's back-off after one wrong code: 1 s
    response = client.post(CODE, {"token": code_of(device)})
    assert response.status_code == 302
    assert shows_admin(client)


def test_a_code_used_once_is_refused_the_second_time(client, manager):
    device = enrolled(manager)
    code = code_of(device)
    password_step(client, "manager")
    client.post(CODE, {"token": code})
    assert shows_admin(client)

    client.logout()
    password_step(client, "manager")
    response = client.post(CODE, {"token": code})
    assert WRONG_CODE in body(response)
    assert not shows_admin(client)


def test_the_code_step_is_forgotten_after_its_time(client, manager, settings):
    device = enrolled(manager)
    settings.TWO_FACTOR_STEP_SECONDS = 0
    password_step(client, "manager")
    response = client.post(CODE, {"token": code_of(device)}, follow=True)
    assert "log in again" in body(response)
    assert not shows_admin(client)


def test_wrong_passwords_lock_the_username_out_until_an_account_manager_unlocks(
    client, manager, user_a, settings
):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert password_step(client, "alice", "wrong").status_code == 200
    response = password_step(client, "alice", "wrong")
    assert response.status_code == 429
    assert "Too many failed logins" in body(response)
    # Locked: even the right password is refused now, with the same message.
    response = password_step(client, "alice")
    assert response.status_code == 429 and "ask an account manager" in body(response).lower()
    assert not shows_admin(client)

    # The account manager sees the lockout, and lifts it from the user's list.
    staff = TwoStepClient()
    staff.force_login(manager)
    assert "alice" in body(staff.get("/admin/axes/accessattempt/"))
    response = staff.post(
        "/admin/auth/user/", {"action": "login_unlock", "_selected_action": [user_a.pk]}
    )
    assert response.status_code == 302
    assert LogEntry.objects.filter(object_id=str(user_a.pk), user=manager).exists()

    assert password_step(client, "alice").status_code == 302
    assert shows_admin(client)


def test_a_lockout_holds_one_username_from_one_address_only(client, user_a, user_b, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        password_step(client, "alice", "wrong")
    assert password_step(client, "bob").status_code == 302
    other_address = TwoStepClient(REMOTE_ADDR="192.0.2.7")
    assert password_step(other_address, "alice").status_code == 302


def test_wrong_codes_count_towards_the_lockout(client, manager, settings):
    device = enrolled(manager)
    password_step(client, "manager")
    wrong = f"{(int(code_of(device)) + 5) % 1_000_000:06d}"
    statuses = []
    for _ in range(settings.AXES_FAILURE_LIMIT):
        device.refresh_from_db()
        TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
        statuses.append(client.post(CODE, {"token": wrong}).status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    assert password_step(client, "manager").status_code == 429


def test_a_client_user_turns_two_factor_on_and_off_from_their_page(client, user_a):
    password_step(client, "alice")
    page = body(client.get(ACCOUNT))
    assert "Two-factor login is <strong>off</strong>" in page
    app = Authenticator()
    app.add("alice", re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', page).group(1))
    response = client.post(ACCOUNT, {"token": app.code("alice")}, follow=True)
    assert "Two-factor login is on" in body(response)
    assert shows_admin(client)  # this session passed with the new device

    client.logout()
    assert password_step(client, "alice").url == CODE
    client.post(CODE, {"token": app.code("alice")})
    assert shows_admin(client)

    response = client.post(ACCOUNT, {"token": app.code("alice")}, follow=True)
    assert "Two-factor login is off" in body(response)
    client.logout()
    assert password_step(client, "alice").url == "/admin/referrals/referral/"


def test_a_manager_cannot_turn_off_what_is_required(client, manager):
    device = enrolled(manager)
    client.force_login(manager)
    page = body(client.get(ACCOUNT))
    assert "required for your account" in page and "Turn off" not in page
    client.post(ACCOUNT, {"token": code_of(device)})
    assert TOTPDevice.objects.filter(user=manager, confirmed=True).exists()


def test_an_account_manager_resets_a_lost_device_and_the_history_says_so(client, manager, client_a):
    client_a.require_two_factor = True
    client_a.save()
    carol = client_user_create(client=client_a, username="carol", password=PASSWORD)
    enrolled(carol)
    client.force_login(manager)
    response = client.post(
        "/admin/auth/user/", {"action": "two_factor_reset", "_selected_action": [carol.pk]}
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=carol).exists()
    entry = LogEntry.objects.get(object_id=str(carol.pk), user=manager)
    assert "two-factor" in entry.get_change_message()

    login = TwoStepClient()
    assert password_step(login, "carol").url == ENROL


def test_an_account_manager_cannot_reset_another_staff_users_device(client, manager):
    other = get_user_model().objects.create_user(username="other", password=PASSWORD, is_staff=True)
    device = enrolled(other)
    client.force_login(manager)
    client.post("/admin/auth/user/", {"action": "two_factor_reset", "_selected_action": [other.pk]})
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


def test_client_users_see_no_lockouts(client, user_a):
    client.force_login(user_a)
    assert client.get("/admin/axes/accessattempt/").status_code == 403


def test_api_tokens_work_as_before_for_users_with_two_factor(manager, user_a, client_a):
    enrolled(manager)
    client_a.require_two_factor = True
    client_a.save()
    assert api_client_for(manager).get("/api/v1/referrals/").status_code == 200
    assert api_client_for(user_a).get("/api/v1/referrals/").status_code == 200


def test_the_failure_limit_and_lockout_time_come_from_the_environment(tmp_path):
    """LOGIN_FAILURE_LIMIT and LOGIN_LOCKOUT_MINUTES (0: until unlocked) reach django-axes."""

    shown = (
        "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    )
    for minutes, cool_off in (("15", "0:15:00"), ("0", "None")):
        env = {**os.environ, "ROKT_VAR_DIR": str(tmp_path), "LOGIN_FAILURE_LIMIT": "3",
               "LOGIN_LOCKOUT_MINUTES": minutes}  # fmt: skip
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", shown], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert result.stdout.split()[-2:] == ["3", cool_off]
