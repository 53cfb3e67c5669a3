"""Recovery after a crashed api worker: how soon deliveries resume once a replacement is up,
and how much longer any referral waits than it would have without the crash.

Run:  .venv/bin/python bench/recovery.py                      (the platform as it is)
      .venv/bin/python bench/recovery.py --platform DIR       (the platform unpacked in DIR,
                                                                e.g. ``git archive <commit>``)

The Procfile's layout on a scratch database (``bench_recovery``, dropped first) and Redis
database 12 (emptied; ``BENCH_RECOVERY_BROKER`` to change): an api worker (``--queues
deliveries_api --pool threads --concurrency 16``), a worker for housekeeping (the tick), beat
with the default tick (``DELIVERY_API_TICK_SECONDS`` 2), and an HTTP receiver in this process
answering 200 after 20 ms. A burst of ``--burst`` referrals is ingested in calls of 50, twice:

1. *no crash*: each referral's wait, from its call's commit to its request's arrival;
2. *crash*: the api worker is SIGKILLed once a third of the burst has arrived, and a
   replacement started at once. Measured: the replacement's start-up (kill to its answering a
   ping), the time from then to the first delivery, and each referral's *extra wait* (its wait
   minus the same referral's wait in the run without the crash); then every item checked
   (delivered, one delivered attempt).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from harness.database import ROOT, scratch_database  # noqa: E402

BROKER = os.environ.get("BENCH_RECOVERY_BROKER", "redis://127.0.0.1:6379/12")
SCRATCH_DB = os.environ.get("BENCH_RECOVERY_DB", "bench_recovery")
SECRET_KEY = "bench-recovery-secret-key-0123456789-not-for-production"  # noqa: S105
CALL = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=1500, help="referrals of each burst")
    parser.add_argument("--platform", type=Path, default=ROOT, help="the code the workers run")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    os.environ.update({
        "SECRET_KEY": SECRET_KEY, "CELERY_BROKER_URL": BROKER, "ROKT_VAR_DIR": str(work),
        "DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
    })  # fmt: skip
    scratch_database(args.server, SCRATCH_DB)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    from tests.servers.http_receiver import HttpReceiver

    receiver = HttpReceiver()
    receiver.slow(0.02)
    stack = _Stack(work, args.platform)
    try:
        calm = _run(stack, receiver, args.burst, crash=False)
        crashed = _run(stack, receiver, args.burst, crash=True)
    finally:
        stack.stop()
        receiver.close()
    print(_report(args, calm, crashed))


class _Stack:
    def __init__(self, work: Path, platform: Path) -> None:
        self.work, self.platform, self.started = work, platform, 0
        self.env = {"PYTHONPATH": str(platform)}
        self.housekeeping = self._celery("worker", "--queues", "housekeeping", "--pool",
                                         "threads", "--concurrency", "2", "--hostname",
                                         "housekeeping@%h", log="housekeeping")  # fmt: skip
        self.beat = self._celery("beat", "--schedule", str(work / "beat-schedule"), log="beat")
        self.api = None

    def _celery(self, *args: str, log: str):
        from tests.processes import BIN, start

        return start([str(BIN / "celery"), "-A", "rokt_platform", *args], env=self.env,
                     log=self.work / f"{log}.log", cwd=self.platform)  # fmt: skip

    def start_api(self) -> str:
        """The Procfile's api worker; its name."""
        self.started += 1
        name = f"api-{self.started}@bench"
        self.api = self._celery("worker", "--queues", "deliveries_api", "--pool", "threads",
                                "--concurrency", "16", "--hostname", name, "--without-mingle",
                                "--without-gossip", log=f"api-{self.started}")  # fmt: skip
        return name

    def stop(self) -> None:
        from tests.processes import stop

        for process in (self.api, self.housekeeping, self.beat):
            if process is not None:
                stop(process)


def _answering(name: str) -> bool:
    from rokt_platform.celery import app

    return any(name in reply for reply in app.control.ping(destination=[name], timeout=0.3))


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run(stack: _Stack, receiver, burst: int, *, crash: bool) -> dict:
    """One burst to a delivery of its own; each referral's wait (by its place in the burst),
    and, with ``crash``, the kill, the replacement's start-up and the first delivery after."""
    from deliveries.models import Attempt, DeliveryItem
    from referrals.services import referrals_ingest
    from tests.factories import make_api_delivery, make_client, referral_record
    from tests.processes import stop

    name = stack.start_api()
    _wait(lambda: _answering(name), 60, "the api worker")
    client = make_client(f"recovery-{int(crash)}")
    delivery = make_api_delivery(client, receiver.url())
    before = len(receiver.requests)
    committed: dict[int, tuple[int, float]] = {}  # item id -> (place, commit time)
    for start in range(0, burst, CALL):
        outcomes = referrals_ingest(records=[referral_record(client) for _ in range(CALL)])
        at = time.monotonic()
        items = dict(DeliveryItem.objects.filter(
            delivery=delivery, referral_id__in=[o.id for o in outcomes]
        ).values_list("referral_id", "pk"))  # fmt: skip
        for place, outcome in enumerate(outcomes, start):
            committed[items[outcome.id]] = (place, at)
    result: dict = {}
    if crash:
        _wait(lambda: len(receiver.requests) - before >= burst // 3, 60, "a third delivered")
        stop(stack.api, signal.SIGKILL)
        killed = time.monotonic()
        name = stack.start_api()
        _wait(lambda: _answering(name), 60, "the replacement")
        result.update(killed=killed, ready=time.monotonic())
    open_items = DeliveryItem.objects.filter(delivery=delivery).exclude(status="delivered")
    _wait(lambda: not open_items.exists(), 300, "every referral delivered")
    stop(stack.api)
    arrivals: dict[int, list[float]] = defaultdict(list)
    for request in receiver.requests[before:]:
        arrivals[int(request.header("webhook-id").removeprefix("msg_"))].append(
            request.received_at
        )
    outcomes = Counter(Attempt.objects.filter(delivery=delivery, outcome="delivered")
                       .values_list("item_id", flat=True))  # fmt: skip
    assert set(arrivals) == set(committed) and set(outcomes.values()) == {1}, "not exactly once"
    result["wait"] = {place: min(arrivals[pk]) - at for pk, (place, at) in committed.items()}
    result["repeats"] = sum(len(times) - 1 for times in arrivals.values())
    if crash:
        after = [t for times in arrivals.values() for t in times if t > result["ready"]]
        result["first_after_ready"] = min(after) - result["ready"] if after else None
        result["last"] = max(t for times in arrivals.values() for t in times)
    return result


def _report(args, calm: dict, crashed: dict) -> str:
    extra = {p: crashed["wait"][p] - calm["wait"][p] for p in calm["wait"]}
    worst = max(extra, key=extra.get)
    startup = crashed["ready"] - crashed["killed"]
    platform = "as it is" if args.platform == ROOT else f"from {args.platform}"
    return "\n".join([
        f"Platform {platform}; a burst of {args.burst} referrals in calls of {CALL}, the api "
        "worker SIGKILLed once a third had arrived and a replacement started at once:",
        f"- replacement's start-up (kill to answering a ping): {startup:.1f} s",
        f"- first delivery after the replacement answered: {crashed['first_after_ready']:.2f} s",
        f"- max extra wait of a referral: {extra[worst]:.1f} s (its wait "
        f"{crashed['wait'][worst]:.1f} s against {calm['wait'][worst]:.1f} s without the "
        "crash); beyond the start-up: "
        f"{extra[worst] - startup:.1f} s",
        f"- every referral delivered, one delivered attempt each; requests repeated (cut by the "
        f"kill): {crashed['repeats']}; last arrival {crashed['last'] - crashed['killed']:.1f} s "
        "after the kill",
        f"- max wait without the crash: {max(calm['wait'].values()):.1f} s",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
