"""The README's run command starts web, worker and beat on the embedded default."""

from __future__ import annotations

import os
import urllib.request

import pytest

from tests.processes import ROOT, free_port, start, stop, wait_for

pytestmark = pytest.mark.slow


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status
    except OSError:
        return None


def test_run_demo_serves_the_admin_login_the_schema_and_health(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The embedded default: no DATABASE_URL, no CELERY_BROKER_URL, a private var/ folder.
    env = {"ROKT_VAR_DIR": str(tmp_path / "var"), "WEB_BIND": f"127.0.0.1:{port}"}
    removed = {"DATABASE_URL", "CELERY_BROKER_URL"}
    saved = {name: os.environ.pop(name) for name in removed if name in os.environ}
    try:
        process = start([str(ROOT / "scripts" / "run-demo")], env=env, log=tmp_path / "demo.log")
    finally:
        os.environ.update(saved)
    try:
        wait_for(lambda: _status(f"{base}/admin/login/") == 200, timeout=180,
                 what=f"the web server; log:\n{(tmp_path / 'demo.log').read_text()[-3000:]}")
        assert _status(f"{base}/api/schema/") == 200
        assert _status(f"{base}/api/docs/") == 200
        assert _status(f"{base}/healthz") == 200
        log = (tmp_path / "demo.log").read_text()
        assert "username 'manager'" in log and "username 'acme'" in log
        assert "beat: Starting" in log
        assert process.poll() is None
    finally:
        stop(process)
