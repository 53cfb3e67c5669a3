"""Real-time API delivery: referrals/s from ingestion to the receiver's 2xx, and latency from
commit to arrival, through a real Celery worker and beat on Redis, beside baselines.

Run:  .venv/bin/python bench/realtime.py              (full: about 15 minutes, writes the docs)
      .venv/bin/python bench/realtime.py --quick      (under a minute; the platform as it is)

It creates a scratch database for each configuration of the platform (``bench_realtime_<name>``,
dropped first and at the end), empties Redis database 11 (its broker), and starts, each in a
process of its own:

- the receiver (``bench/_realtime_receiver.py``, asyncio): one endpoint answering 200 at once,
  one answering after 2 s; it notes ``time.time()`` and the ``webhook-id`` of each request;
- Celery workers (``--processes``, 2 by default: one a core, as the README advises), each
  ``--pool threads --concurrency N`` (16, the Procfile's) on ``deliveries_api,housekeeping``
  (``bench/_realtime_celery.py``: the platform's app, plus the baseline's bare task);
- beat, firing ``housekeeping.api_deliveries_tick`` every second.

This process ingests through ``referrals_ingest`` (one referral a call at 50/s and 200/s,
more a call only when it falls behind) and notes each referral's commit time (an on-commit
hook registered before the ledger's, which queues the sends: a lone item as a single send, a
transaction's many in chunks). Latency is the receiver's arrival time minus the commit time,
matched by webhook-id ``msg_<item id>``. For each configuration of the platform (``CONFIGS``:
*before*, the code at ``--before``, the platform before its sends in few statements and in
chunks, unpacked apart and put first on the worker's PYTHONPATH, this process then queuing
each item as a send of its own as that code did; *as it is*, the code now; ``deliveries/`` is
not changed), a delivery of its own:

1. latency at 50/s and 200/s offered load, one endpoint;
2. the same 200/s with 10% of the referrals (another client's delivery) going to the 2 s
   endpoint: latency of the other 90% (and, as it is, how the slow backlog drains);
3. sustained rate: a burst of ``--burst`` referrals ingested in 1,000-record calls, timed from
   the first call to the last item ``delivered`` (every item then checked: delivered, exactly
   one Attempt, outcome delivered, one request at the receiver).

Then the baselines on the same payloads (``build_request`` of a burst's referrals): a plain
urllib3 loop posting them one after the other, and a bare Celery task on the same worker doing
the POST with nothing stored (burst rate; latency from ``delay()`` at 50/s, 200/s); worker
concurrencies (``--sweep``); and the send profiled step by step in this process, one item a
call (``api_item_send``) and 50 a call (``api_items_send``).
Throughout: CPU seconds per process (worker, PostgreSQL backends, Redis, receiver, driver,
beat, the rest of the machine), connections opened, and what each send task returned (its
calls, and the outcome of each item they carried).

The figures go into docs/PERFORMANCE.md on the full run (or with ``--write``), once
bench/files.py (which rewrites its own section of that file) is not running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from _realtime_baselines import bare_task_burst, bare_task_level, build_payloads, plain_loop
from _realtime_config import BROKER, CONFIGS, SCRATCH_DB, SLOW_SHARE, before_tree, code_measured
from _realtime_ingest import (
    Records,
    delivery_create,
    exactly_once_check,
    ingest_paced,
    ingest_stamped,
    item_mark,
    latencies_ms,
    open_items,
    pause,
    single_sends,
    wait_delivered,
)
from _realtime_profile import profile_sends
from _realtime_report import render_report
from _realtime_stack import (
    BENCH,
    DATABASES,
    VACUUMED,
    Stack,
    cpu_since,
    cpu_snapshot,
    environment_set,
    fresh_database,
    vacuum,
)
from harness.database import ROOT, drop_databases, use_database
from harness.docs import write_section_when_free
from harness.log import say
from harness.stats import percentiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="800 burst, 3 s a load level")
    parser.add_argument(
        "--config", choices=[*CONFIGS, "all"],
        help="the platform before, as it is, or all (the full run's default)",
    )  # fmt: skip
    parser.add_argument("--burst", type=int, help="referrals of the sustained burst")
    parser.add_argument("--seconds", type=float, help="seconds of each load level")
    parser.add_argument("--rates", default="50,200", help="offered loads, referrals/s")
    # The Procfile's api worker: 16 threads a process, one process a core.
    parser.add_argument("--concurrency", type=int, default=16, help="threads a worker process")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--sweep", help="other worker concurrencies to try, e.g. 16,64")
    parser.add_argument("--sweep-config", default="as_is", help="the platform in the sweep")
    parser.add_argument(
        "--before", default="71d9303",
        help="the commit measured as 'before' (the one before the sends in few statements and "
        "in chunks, f59c512 and 016d403)",
    )  # fmt: skip
    parser.add_argument(
        "--contended", action=argparse.BooleanOptionalAction, default=None,
        help="also the top rate beside a busy loop taking one core (the full run's default)",
    )  # fmt: skip
    parser.add_argument("--profile-items", type=int, help="items sent each way in the profile")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--write", action=argparse.BooleanOptionalAction, default=None,
        help="update docs/PERFORMANCE.md (default: on the full run only)",
    )  # fmt: skip
    parser.add_argument("--save", help="also keep the figures in this file (pickle)")
    parser.add_argument("--report-from", help="no run: the report of figures kept by --save")
    args = parser.parse_args()
    if args.report_from:
        import pickle

        with open(args.report_from, "rb") as handle:
            saved_args, results = pickle.load(handle)  # noqa: S301 (our own file)
        report = render_report(saved_args, results)
        print(report)
        if args.write:
            write_section_when_free("bench/realtime.py", report, "bench/files.py")
        return
    args.burst = args.burst or (800 if args.quick else 20_000)
    args.seconds = args.seconds or (3.0 if args.quick else 30.0)
    args.bare_seconds = 2.0 if args.quick else args.seconds
    # How long to wait for a level's (a burst's) last delivery: the quick run stays short.
    args.wait = 4.0 if args.quick else 120.0
    args.burst_wait = 8.0 if args.quick else 300.0
    config = args.config or ("as_is" if args.quick else "all")
    args.configs = list(CONFIGS) if config == "all" else [config]
    args.sweep_config = args.sweep_config
    args.rate_list = [float(r) for r in args.rates.split(",")]
    args.sweep_list = [int(n) for n in args.sweep.split(",")] if args.sweep else (
        [] if args.quick else [8, 32, 64]
    )  # fmt: skip
    args.profile_items = args.profile_items or (100 if args.quick else 2_000)
    args.contended = args.contended if args.contended is not None else not args.quick
    write = args.write if args.write is not None else not args.quick

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    environment_set(args, work)
    use_database(f"{args.server}/{SCRATCH_DB}_{args.configs[0]}")
    try:
        fresh_database(args, None, args.configs[0])
        from rokt_platform.startup import freeze_startup_objects

        # This process stands in for the API's (whose web workers freeze theirs once loaded,
        # rokt_platform/wsgi.py): without it, a full collection walking Django's objects now
        # and then stalls it between a commit and the send it queues.
        freeze_startup_objects()
        results = _bench(args, work)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_databases(args.server, DATABASES)
        shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = time.monotonic() - began
    # For a report made later (--report-from):
    results["autovacuum"] = sorted(VACUUMED)
    results["measured_at"] = datetime.now(UTC)
    for measured in results["configs"].values():
        measured["burst"].pop("referral_ids", None)
    if args.save:
        import pickle

        with open(args.save, "wb") as handle:
            pickle.dump((args, results), handle)
    report = render_report(args, results)
    print(report)
    print(f"\n(took {results['total_seconds']:.0f} s)")
    if write:
        write_section_when_free("bench/realtime.py", report, "bench/files.py")


def _bench(args, work: Path) -> dict:
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    stack = Stack(work, args.processes)
    try:
        return _phases(args, stack)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()


# name: (short label, what it is, the worker's environment). "before" runs the worker on the
# code of ``--before`` (the commit before the sends in few statements and in chunks), unpacked
# apart; this process (the same code as ever) then queues the sends as that code did.


def _phases(args, stack: Stack) -> dict:
    stack.start_beat()
    results: dict = {
        "concurrency": args.concurrency, "processes": args.processes, "configs": {},
        "code": code_measured(),
    }  # fmt: skip
    payloads = None
    for number, config in enumerate(args.configs):
        label, _, env = CONFIGS[config]
        if config == "before":
            tree = before_tree(args, stack.work)
            if tree is None:
                say(f"no {args.before} to compare with: skipped")
                continue
            env = {**env, "PYTHONPATH": os.pathsep.join([tree, str(BENCH), str(ROOT)])}
            # Run from the tree too: Celery imports its app with the working directory first
            # on the path, and a package found there (or through the project's editable
            # install) would mix today's code into the worker of before.
            cwd = Path(tree)
        else:
            cwd = ROOT
        if number:
            fresh_database(args, stack, config)
        say(f"platform {label}, {args.processes} x --concurrency {args.concurrency}")
        # A delivery (and client) of its own for each configuration: what one leaves unsent
        # is paused with it, and never reaches the next.
        alpha = delivery_create(f"alpha{number}", stack.fast_port)
        records = Records(f"alpha{number}", seed=1)
        stack.start_worker(args.concurrency, env, cwd)
        single_sends(config == "before")
        _warm_up(stack, alpha, records)
        measured = results["configs"][config] = {"levels": {}}
        for rate in args.rate_list:
            say(f"  {rate:g}/s for {args.seconds:g} s...")
            measured["levels"][rate] = _level(args, stack, alpha, [records], rate)
        say(f"  200/s, 1 in {SLOW_SHARE} to the slow endpoint...")
        bravo = delivery_create(f"bravo{number}", stack.slow_port)
        measured["slow"] = _slow_level(
            args, stack, alpha, bravo, records, Records(f"bravo{number}", seed=2),
            drain=config == "as_is",
        )  # fmt: skip
        if config == "as_is" and args.contended:
            say(f"  {max(args.rate_list):g}/s beside a busy loop taking one core...")
            measured["contended"] = _contended_level(args, stack, alpha, records)
        say(f"  burst of {args.burst:,}...")
        measured["burst"] = _burst(args, stack, alpha, records.take(args.burst))
        if payloads is None:
            payloads = build_payloads(alpha, measured["burst"]["referral_ids"])
        _end_config(stack, alpha)
        single_sends(False)
    say("baselines...")
    stack.start_worker(args.concurrency, {})
    results["plain"] = plain_loop(stack, payloads)
    results["bare_burst"] = bare_task_burst(stack, payloads)
    results["bare_levels"] = {
        rate: bare_task_level(stack, payloads, rate, args.bare_seconds) for rate in args.rate_list
    }
    stack.stop_worker()
    results["sweep"] = {}
    results["sweep_config"] = args.sweep_config
    results["sweep_burst"] = args.burst // 4
    for number, concurrency in enumerate(args.sweep_list):
        fresh_database(args, stack, f"sweep{concurrency}")
        say(
            f"worker {args.processes} x --concurrency {concurrency}, "
            f"{CONFIGS[args.sweep_config][0]}..."
        )
        alpha = delivery_create(f"sweep{number}", stack.fast_port)
        records = Records(f"sweep{number}", seed=1)
        stack.start_worker(concurrency, CONFIGS[args.sweep_config][2])
        _warm_up(stack, alpha, records)
        results["sweep"][concurrency] = {
            "level": _level(args, stack, alpha, [records], max(args.rate_list)),
            "burst": _burst(args, stack, alpha, records.take(results["sweep_burst"])),
        }
        _end_config(stack, alpha)
    fresh_database(args, stack, "profile")
    say(f"profile of {args.profile_items:,} sends one a call, as many in chunks...")
    alpha = delivery_create("profile", stack.fast_port)
    results["profile"] = profile_sends(stack, alpha, Records("profile", seed=1).take(
        2 * args.profile_items))  # fmt: skip
    return results


def _end_config(stack: Stack, delivery) -> None:
    """Pause the delivery (the tick leaves it alone), stop the worker, and empty the queue of
    whatever it left (the tick's extra messages of the platform as it is)."""
    import redis

    pause(delivery)
    stack.stop_worker()
    broker = redis.Redis.from_url(BROKER)
    broker.delete("deliveries_api", "housekeeping", "unacked", "unacked_index")


def _warm_up(stack: Stack, alpha, records: Records) -> None:
    """Until the worker answers: imports, connections, compiled columns, kept-alive sockets."""
    mark = item_mark()
    ingest_stamped(records.take(50))
    if not wait_delivered(stack, alpha, mark, timeout=60):
        raise RuntimeError(f"the worker did not deliver the warm-up\n{stack.logs()}")
    time.sleep(0.5)
    stack.dump()


def _level(args, stack: Stack, alpha, sources: list[Records], rate: float) -> dict:
    vacuum()
    mark = item_mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    paced = ingest_paced(sources, rate, args.seconds)
    complete = wait_delivered(stack, alpha, mark, timeout=args.wait)
    used = cpu_since(stack, cpu)
    outcomes = stack.counts() - counts
    records = stack.dump()
    latencies = latencies_ms(records, alpha, mark, paced["commits"])
    return {
        "offered": rate, "achieved": paced["achieved"], "complete": complete,
        "batches": Counter(paced["batches"]), "latency": percentiles(latencies),
        "cpu": used, "referrals": len(paced["commits"]), "outcomes": outcomes,
    }  # fmt: skip


def _contended_level(args, stack: Stack, alpha, records) -> dict:
    """The top rate while a busy loop (one Python process, never sleeping) takes one of the
    machine's cores: the headroom the latency has when a neighbour, a backup or a report
    competes for the CPU, in every run rather than only when the machine happens to be busy."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # the scheduler has settled it on a core
        return _level(args, stack, alpha, [records], max(args.rate_list))
    finally:
        busy.kill()
        busy.wait()


def _slow_level(
    args, stack: Stack, alpha, bravo, alpha_records, bravo_records, *, drain: bool
) -> dict:
    """200/s, one referral in SLOW_SHARE to bravo's slow endpoint: the others' latency, and
    what the slow endpoint's backlog costs."""
    import redis

    from deliveries.models import DeliveryItem

    broker = redis.Redis.from_url(BROKER)
    rate = max(args.rate_list)
    vacuum()
    mark = item_mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    paced = ingest_paced([alpha_records] * (SLOW_SHARE - 1) + [bravo_records], rate, args.seconds)
    complete = wait_delivered(stack, alpha, mark, timeout=args.wait)
    used = cpu_since(stack, cpu)
    outcomes = stack.counts() - counts
    records = stack.dump()
    latencies = latencies_ms(records, alpha, mark, paced["commits"])
    bravo_items = DeliveryItem.objects.filter(delivery=bravo, pk__gt=mark)
    owed = bravo_items.count()
    at_end = bravo_items.filter(status=DeliveryItem.Status.DELIVERED).count()
    result = {
        "offered": rate, "achieved": paced["achieved"], "complete": complete,
        "latency": percentiles(latencies), "cpu": used, "bravo_owed": owed,
        "referrals": len(paced["commits"]), "fast_referrals": len(paced["commits"]) - owed,
        "batches": Counter(paced["batches"]),
        "outcomes": outcomes,
        "bravo_delivered_at_end": at_end, "slow_requests": sum(r[2] == "slow" for r in records),
    }  # fmt: skip
    if drain and not args.quick:
        # Drain the slow endpoint's backlog, watching the broker: how many messages wait.
        say(f"  draining the slow endpoint's {owed - at_end} items...")
        drained_from = time.monotonic()
        cpu = cpu_snapshot(stack)
        samples = []
        deadline = drained_from + max(120.0, 2.5 * (owed - at_end) / 4)
        while time.monotonic() < deadline:
            left = open_items(bravo, mark)
            samples.append((round(time.monotonic() - drained_from), left,
                            broker.llen("deliveries_api"), broker.hlen("unacked")))  # fmt: skip
            if not left:
                break
            time.sleep(5)
        result.update(
            drain_seconds=time.monotonic() - drained_from,
            drain_samples=samples,
            drain_cpu=cpu_since(stack, cpu),
            drained=not open_items(bravo, mark),
        )
        records += stack.dump()
        per_id = Counter(r[1] for r in records if r[2] == "slow")
        result["slow_duplicates"] = sum(per_id.values()) - len(per_id)
    pause(bravo)
    return result


def _burst(args, stack: Stack, alpha, records: list[dict], wait: float | None = None) -> dict:
    import redis
    from django.db.models import Max

    from deliveries.models import DeliveryItem
    from referrals.services import referrals_ingest

    time.sleep(1.0)
    vacuum()
    mark = item_mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    started = time.time()
    ids = []
    for start in range(0, len(records), 1000):
        ids += [o.id for o in referrals_ingest(records=records[start : start + 1000])]
    ingested = time.time()
    complete = wait_delivered(stack, alpha, mark, timeout=wait or args.burst_wait)
    used = cpu_since(stack, cpu)
    outcomes = stack.counts() - counts
    queued = redis.Redis.from_url(BROKER).llen("deliveries_api")
    delivered = DeliveryItem.objects.filter(delivery=alpha, pk__gt=mark, status="delivered")
    last = delivered.aggregate(last=Max("delivered_at"))["last"]
    count = delivered.count()
    time.sleep(0.5)
    arrivals = stack.dump()
    first: dict[str, float] = {}
    for arrived, msg_id, _ in arrivals:
        first.setdefault(msg_id, arrived)
    # The API tick takes an item still pending a minute after it was stored for lost: what
    # was delivered before that is the sending rate untouched by it.
    minute = sum(1 for arrived in first.values() if arrived < started + 60)
    seconds = (last.timestamp() if complete and last else time.time()) - started
    return {
        "count": len(records), "delivered": count, "seconds": seconds, "rate": count / seconds,
        "first_minute_rate": minute / min(60.0, seconds), "ingest_seconds": ingested - started,
        "after_ingest_rate": sum(1 for a in first.values() if a >= ingested)
        / max(1e-9, seconds - (ingested - started)),
        "complete": complete, "cpu": used,
        "check": exactly_once_check(alpha, mark, arrivals, len(records)),
        "outcomes": outcomes, "queued_at_end": queued, "referral_ids": ids,
    }  # fmt: skip


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the processes and drops the database


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        main()
