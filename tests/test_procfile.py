"""The Procfile's api worker scaled to one process a core, as the README advises
(``honcho start -c api=2``): two workers, each with a name of its own, both taking sends, and
every referral delivered exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from deliveries.models import DeliveryItem
from referrals.services import referrals_ingest
from rokt_platform.celery import app
from tests.factories import make_api_delivery, make_client, referral_record
from tests.processes import BIN, ROOT, child_database_url, start, stop, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid
    return False


def _api_workers(honcho_pid: int) -> set[str]:
    """The names of the api workers started under ``honcho_pid`` that answer a ping (other
    tests' workers may share the broker: only ours count)."""
    names = {name for reply in app.control.ping(timeout=1.0) for name in reply}
    return {
        name for name in names
        if name.startswith("api-")
        and _descends_from(int(name.removeprefix("api-").split("@")[0]), honcho_pid)
    }  # fmt: skip


def test_two_api_processes_from_the_procfile_share_the_sends(
    transactional_db, tmp_path, settings, http_receiver
):
    settings.DELIVERY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    app.control.purge()
    env = {
        "DATABASE_URL": child_database_url(), "ROKT_VAR_DIR": str(tmp_path),
        "SECRET_KEY": settings.SECRET_KEY, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
    }  # fmt: skip
    log = tmp_path / "honcho.log"
    honcho = start(
        [str(BIN / "honcho"), "-f", "Procfile", "start", "-c", "api=2", "api"],
        env=env, log=log, cwd=ROOT,
    )  # fmt: skip
    try:
        workers = wait_for(
            lambda: found if len(found := _api_workers(honcho.pid)) == 2 else None,
            timeout=60, what="two api workers answering", logs=log.read_text,
        )  # fmt: skip
        client = make_client("alpha")
        delivery = make_api_delivery(client, http_receiver.url())
        for _ in range(40):  # one referral a call: each its own send task
            outcome = referrals_ingest(records=[referral_record(client)])
            assert outcome[0].status == "created"
        wait_for(
            lambda: not DeliveryItem.objects.filter(delivery=delivery)
            .exclude(status="delivered").exists(),
            timeout=60, what="every referral delivered", logs=log.read_text,
        )  # fmt: skip
        stats = app.control.inspect(destination=sorted(workers), timeout=2.0).stats() or {}
        sends = {name: stats.get(name, {}).get("total", {}).get("deliveries.api.send", 0)
                 for name in workers}  # fmt: skip
    finally:
        stop(honcho)
    assert all(sends.values()), f"a worker took no send: {sends}"
    assert sum(sends.values()) == 40
    ids = Counter(request.header("webhook-id") for request in http_receiver.requests)
    expected = {f"msg_{pk}" for pk in DeliveryItem.objects.filter(delivery=delivery)
                .values_list("pk", flat=True)}  # fmt: skip
    assert set(ids) == expected and set(ids.values()) == {1}
