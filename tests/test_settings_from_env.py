"""A bad setting stops the platform at start with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

BAD_VALUES = [
    ("DEBUG", "perhaps", "DEBUG='perhaps' is not a boolean"),
    ("DATABASE_URL", "mysql://root@localhost/db", "DATABASE_URL has scheme 'mysql'"),
    ("DATABASE_URL", "no-scheme-at-all", "DATABASE_URL has scheme '(none)'"),
    ("CELERY_BROKER_URL", "amqp://guest@localhost//", "CELERY_BROKER_URL has scheme 'amqp'"),
    ("ALLOWED_HOSTS", "example.com,,x.org", "ALLOWED_HOSTS='example.com,,x.org' has an empty"),
    ("SECRET_KEY", "short", "SECRET_KEY is shorter than 32 characters"),
    ("DB_CONN_MAX_AGE", "forever", "DB_CONN_MAX_AGE='forever' is not a whole number"),
    ("INGEST_MAX_RECORDS", "0", "INGEST_MAX_RECORDS=0 is below its minimum of 1"),
    ("DELIVERY_RETRY_SCALE", "fast", "DELIVERY_RETRY_SCALE='fast' is not a number"),
    ("DELIVERY_RETRY_SCALE", "nan", "DELIVERY_RETRY_SCALE=nan is below its minimum"),
    ("DELIVERY_ALLOWED_NETWORKS", "10.0.0.0/8,intranet", "'intranet' is not a network"),
    ("ROKT_ENCRYPTION_KEYS", "not-a-fernet-key", "ROKT_ENCRYPTION_KEYS holds a value"),
    ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT=0 is below its minimum of 1"),
    ("LOGIN_LOCKOUT_MINUTES", "soon", "LOGIN_LOCKOUT_MINUTES='soon' is not a whole number"),
    ("ACCESS_LOG_RETENTION_DAYS", "-1", "ACCESS_LOG_RETENTION_DAYS=-1 is below its minimum of 0"),
]


def _check(env_overrides: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROKT_VAR_DIR": str(tmp_path), **env_overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES,
                         ids=[f"{b[0]}={b[1]}" for b in BAD_VALUES])  # fmt: skip
def test_a_bad_value_fails_at_start_naming_the_variable(name, value, message, tmp_path):
    result = _check({name: value}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_nothing_set_runs_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env["ROKT_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings as s; "
         "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "django.db.backends.sqlite3 filesystem://" in result.stdout
    # A generated secret key is kept, private, for the next start.
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
