"""Celery through real processes: a worker on the real broker, and exactly one beat."""

from __future__ import annotations

import pytest

from deliveries.models import WorkerHeartbeat
from deliveries.tasks import heartbeat
from rokt_platform.celery import app
from tests.processes import BIN, child_database_url, start, stop, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def worker(transactional_db, tmp_path, settings):
    app.control.purge()  # nothing left over from an earlier run reaches this worker
    settings.EXPORT_DIR = tmp_path / "exports"  # shared with the worker through ROKT_VAR_DIR
    process = start(
        [str(BIN / "celery"), "-A", "rokt_platform", "worker", "--queues",
         "housekeeping,exports",
         "--concurrency", "1", "--hostname", "test-worker@%h", "--without-mingle",
         "--without-gossip"],
        env={"DATABASE_URL": child_database_url(), "ROKT_VAR_DIR": str(tmp_path)},
        log=tmp_path / "worker.log",
    )  # fmt: skip
    yield process
    stop(process)


def test_an_xlsx_export_is_built_by_a_real_worker(worker, tmp_path, client):
    from referrals.models import ExportAudit
    from referrals.roles import account_manager_create
    from tests.factories import make_client, make_referral

    alpha = make_client("alpha")
    for number in range(3):
        make_referral(alpha, external_id=f"r{number}")
    manager = account_manager_create(username="m", password="a-long-password-1")
    client.force_login(manager)
    response = client.post("/admin/referrals/referral/export/", {
        "client": alpha.pk, "time_field": "created_at", "column_set": "standard",
        "format": "xlsx",
    })  # fmt: skip
    assert response.status_code == 302
    audit = wait_for(
        lambda: ExportAudit.objects.filter(status__in=["done", "failed"]).first(),
        timeout=60,
        what=f"the worker to build the export; log:\n{_tail(tmp_path / 'worker.log')}",
    )
    assert (audit.status, audit.rows, audit.error) == ("done", 3, "")
    assert (tmp_path / "exports").exists() and audit.file_path.startswith(str(tmp_path))


def test_heartbeat_task_runs_in_a_real_worker_process(worker, tmp_path):
    heartbeat.delay()

    row = wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname__startswith="test-worker@").first(),
        timeout=60,
        what=f"the worker to run the task; log:\n{_tail(tmp_path / 'worker.log')}",
    )
    assert row.beat_at is not None
    assert worker.poll() is None, "the worker died"


def test_a_second_beat_refuses_to_start_and_the_lock_dies_with_the_first(
    transactional_db, tmp_path
):
    def beat(name: str):
        return start(
            [str(BIN / "celery"), "-A", "rokt_platform", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / f"{name}-schedule")],
            env={"DATABASE_URL": child_database_url()},
            log=tmp_path / f"{name}.log",
        )  # fmt: skip

    first = beat("first")
    try:
        wait_for(
            lambda: "beat: Starting" in _tail(tmp_path / "first.log"),
            timeout=30,
            what="the first beat to start",
        )
        second = beat("second")
        assert second.wait(timeout=30) != 0
        assert "another beat holds" in _tail(tmp_path / "second.log")
        assert first.poll() is None, "the first beat must keep running"
    finally:
        stop(first)

    third = beat("third")  # the lock went with the first beat's process
    try:
        wait_for(
            lambda: "beat: Starting" in _tail(tmp_path / "third.log"),
            timeout=30,
            what="a new beat to start after the first stopped",
        )
        assert third.poll() is None
    finally:
        stop(third)


def _tail(path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""
