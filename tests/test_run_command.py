"""The README's run command starts web, worker and beat on the embedded default."""

from __future__ import annotations

import pytest

from tests.processes import http_status, run_demo

pytestmark = pytest.mark.slow


def test_run_demo_serves_the_admin_login_the_schema_and_health(tmp_path):
    with run_demo(tmp_path) as demo:
        # The schema needs a login; the docs page sends a browser to the login page first.
        assert http_status(f"{demo.base}/api/schema/") == 401
        assert http_status(f"{demo.base}/api/docs/") == 200
        assert http_status(f"{demo.base}/healthz") == 200
        log = demo.log.read_text()
        assert "username 'manager'" in log and "username 'acme'" in log
        assert "beat: Starting" in log
        assert demo.process.poll() is None
