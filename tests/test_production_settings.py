"""Production hardening: the documented environment passes Django's deployment checks, HTTPS is
enforced behind a TLS proxy, sessions end when idle, and the API schema needs a login."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone

ROOT = Path(__file__).resolve().parent.parent
# README "Production": the variables a deployment sets (values are examples).
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 10 + "-production-secret-key-of-sixty-characters-0123456",
    "ALLOWED_HOSTS": "admin.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://admin.example.com",
    "ROKT_HTTPS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def _manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "DEBUG"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
        env={**clean, "ROKT_VAR_DIR": str(tmp_path), **env}, timeout=120,
    )  # fmt: skip


def test_the_documented_production_environment_passes_the_deployment_checks(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV,
                     tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_demo_defaults_do_not_pass_them(tmp_path):
    """The check is real: on the plain-HTTP demo defaults it names what production must set."""
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={}, tmp_path=tmp_path)
    assert result.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in result.stderr


def test_a_proxy_header_that_is_not_a_header_name_stops_the_start(tmp_path):
    result = _manage("check", env={"SECURE_PROXY_SSL_HEADER": "X Forwarded: https"},
                     tmp_path=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER is a header name" in result.stderr


def _settings_under(env: dict[str, str], tmp_path: Path, *names: str) -> dict:
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    result = _manage("shell", "-v0", "-c", script, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_turns_on_secure_cookies_redirects_and_hsts(tmp_path):
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
             "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
             "SECURE_PROXY_SSL_HEADER")  # fmt: skip
    assert _settings_under(PRODUCTION_ENV, tmp_path, *names) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }  # fmt: skip
    demo = _settings_under({}, tmp_path, *names)
    assert not any(demo.values())


HTTPS_ON = {
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SESSION_COOKIE_SECURE": True,
    "ALLOWED_HOSTS": ["admin.example.com"],
}


@pytest.mark.django_db
def test_behind_the_proxy_http_is_redirected_and_https_gets_hsts(client, manager):
    with override_settings(**HTTPS_ON):
        plain = client.get("/admin/login/", HTTP_HOST="admin.example.com")
        assert plain.status_code == 301
        assert plain["Location"] == "https://admin.example.com/admin/login/"
        secure = client.get(
            "/admin/login/", HTTP_HOST="admin.example.com", HTTP_X_FORWARDED_PROTO="https"
        )
        assert secure.status_code == 200
        assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
        # A probe inside the network reaches health over plain HTTP.
        assert client.get("/healthz", HTTP_HOST="admin.example.com").status_code != 301
        logged_in = client.post(
            "/admin/login/", {"username": "manager", "password": "correct-horse-battery-staple"},
            HTTP_HOST="admin.example.com", HTTP_X_FORWARDED_PROTO="https",
        )  # fmt: skip
        assert logged_in.status_code == 302
        assert logged_in.cookies["sessionid"]["secure"]


@pytest.mark.django_db
def test_a_session_ends_after_the_idle_time_and_each_request_extends_it(client, manager, settings):
    client.force_login(manager)
    assert client.get("/admin/").status_code == 200
    session = Session.objects.get()
    idle = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert abs(session.expire_date - (timezone.now() + idle)) < dt.timedelta(minutes=1)

    Session.objects.update(expire_date=timezone.now() + dt.timedelta(seconds=30))
    assert client.get("/admin/").status_code == 200  # active: the clock starts again
    assert Session.objects.get().expire_date > timezone.now() + idle - dt.timedelta(minutes=1)

    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_the_schema_and_docs_need_a_login(client, manager, manager_api):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/schema/").status_code == 401
    docs = client.get("/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"] == "/admin/login/?next=/api/docs/"

    assert manager_api.get("/api/schema/").status_code == 200  # an API token
    client.force_login(manager)  # the admin's session, as the docs page fetches it
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200


def test_api_docs_public_opens_them_without_a_login(tmp_path):
    script = (
        "from django.test import Client; c = Client(HTTP_HOST='localhost'); "
        "print(c.get('/api/schema/').status_code, c.get('/api/docs/').status_code)"
    )
    for env, expected in (({"API_DOCS_PUBLIC": "true"}, "200 200"), ({}, "401 302")):
        result = _manage("shell", "-v0", "-c", script, env=env, tmp_path=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == expected
