"""Real-time API delivery: referrals/s from ingestion to the receiver's 2xx, and latency from
commit to arrival, through a real Celery worker and beat on Redis, beside baselines.

Run:  .venv/bin/python bench/realtime.py              (full: about 35 minutes, writes the docs)
      .venv/bin/python bench/realtime.py --quick      (under a minute; the platform as it is)

It creates a scratch database (``bench_realtime``, dropped first and at the end), empties Redis
database 11 (its broker), and starts, each in a process of its own:

- the receiver (``bench/_realtime_receiver.py``, asyncio): one endpoint answering 200 at once,
  one answering after 2 s; it notes ``time.time()`` and the ``webhook-id`` of each request;
- a Celery worker, ``--pool threads --concurrency N`` on ``deliveries_api,housekeeping``
  (``bench/_realtime_celery.py``: the platform's app, plus the baseline's bare task);
- beat, firing ``housekeeping.api_deliveries_tick`` every second.

This process ingests through ``referrals_ingest`` (one referral a call at 50/s and 200/s,
more a call only when it falls behind) and notes each referral's commit time (an on-commit
hook registered before the ledger's, which queues the send). Latency is the receiver's arrival
time minus the commit time, matched by webhook-id ``msg_<item id>``. For each configuration of
the platform (``CONFIGS``: before its real-time throughput fixes, as it is, then with the
proposals added one after another, tried from the bench's own modules; ``deliveries/`` is not
changed), a delivery of its own:

1. latency at 50/s and 200/s offered load, one endpoint;
2. the same 200/s with 10% of the referrals (another client's delivery) going to the 2 s
   endpoint: latency of the other 90% (and, the first time, how the slow backlog drains);
3. sustained rate: a burst of ``--burst`` referrals ingested in 1,000-record calls, timed from
   the first call to the last item ``delivered`` (every item then checked: delivered, exactly
   one Attempt, outcome delivered, one request at the receiver).

Then the baselines on the same payloads (``build_request`` of a burst's referrals): a plain
urllib3 loop posting them one after the other, and a bare Celery task on the same worker doing
the POST with nothing stored (burst rate; latency from ``delay()`` at 50/s, 200/s); worker
concurrencies (``--sweep``); and ``api_item_send`` profiled step by step in this process.
Throughout: CPU seconds per process (worker, PostgreSQL backends, Redis, receiver, driver,
beat, the rest of the machine), connections opened, and what each send call returned.

The figures go into docs/PERFORMANCE.md on the full run (or with ``--write``), once
bench/files.py (which rewrites its own section of that file) is not running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from _data import ROOT, scratch_database, write_section  # noqa: E402

SCRATCH_DB = "bench_realtime"
BROKER = "redis://127.0.0.1:6379/11"
# The worker decrypts the deliveries' secrets with the key this process encrypted them with.
SECRET_KEY = "bench-realtime-secret-key-0123456789-not-for-production"  # noqa: S105
AIMS = {"p95_ms": 25.0, "rate": 600.0, "slow_rise_ms": 10.0}
SLOW_SECONDS = 2.0
SLOW_SHARE = 10  # one referral in SLOW_SHARE goes to the slow endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="800 burst, 3 s a load level")
    parser.add_argument(
        "--config", choices=[*CONFIGS, "all"],
        help="the platform as it is, with proposed changes, or all (the full run's default)",
    )  # fmt: skip
    parser.add_argument("--burst", type=int, help="referrals of the sustained burst")
    parser.add_argument("--seconds", type=float, help="seconds of each load level")
    parser.add_argument("--rates", default="50,200", help="offered loads, referrals/s")
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads")
    parser.add_argument("--sweep", help="other worker concurrencies to try, e.g. 16,64")
    parser.add_argument("--sweep-config", default="as_is", help="the platform in the sweep")
    parser.add_argument(
        "--before", default="01479f2^",
        help="the commit measured as 'before' (the one before the real-time throughput fixes)",
    )  # fmt: skip
    parser.add_argument("--profile-items", type=int, help="items sent in the profile")
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
        report = _report(saved_args, results)
        print(report)
        if args.write:
            _write_when_files_bench_is_done(report)
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
        [] if args.quick else [8, 16, 64]
    )  # fmt: skip
    args.profile_items = args.profile_items or (100 if args.quick else 2_000)
    write = args.write if args.write is not None else not args.quick

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    _environment(args, work)
    scratch_database(args.server, SCRATCH_DB)
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        results = _bench(args, work)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _drop(args.server)
        shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = time.monotonic() - began
    for measured in results["configs"].values():
        measured["burst"].pop("referral_ids", None)
    if args.save:
        import pickle

        with open(args.save, "wb") as handle:
            pickle.dump((args, results), handle)
    report = _report(args, results)
    print(report)
    print(f"\n(took {results['total_seconds']:.0f} s)")
    if write:
        _write_when_files_bench_is_done(report)


def _write_when_files_bench_is_done(report: str) -> None:
    """bench/files.py rewrites its own section of the same file when it ends: wait for it,
    so that neither write loses the other's."""
    while subprocess.run(["pgrep", "-f", "bench/files.py"], capture_output=True).returncode == 0:
        _say("bench/files.py is running: waiting for it to end before writing the docs")
        time.sleep(30)
    write_section("bench/realtime.py", report)


def _environment(args, work: Path) -> None:
    """The same settings for this process and its children (before Django starts)."""
    os.environ.update({
        "SECRET_KEY": SECRET_KEY,
        "CELERY_BROKER_URL": BROKER,
        "DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DELIVERY_API_TICK_SECONDS": "1",
        "ROKT_VAR_DIR": str(work),
        "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
    })  # fmt: skip


_BEGAN = time.monotonic()


def _say(message: str) -> None:
    print(f"[{time.monotonic() - _BEGAN:5.1f} s] {message}", flush=True)


def _drop(server: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


# --- the processes -------------------------------------------------------------------------


class Stack:
    """Receiver, worker and beat; the worker restartable with another concurrency."""

    def __init__(self, work: Path, concurrency: int) -> None:
        import urllib3

        self.work = work
        self.receiver = subprocess.Popen(
            [sys.executable, str(BENCH / "_realtime_receiver.py"), "--slow", str(SLOW_SECONDS)],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.fast_port, self.slow_port = map(int, self.receiver.stdout.readline().split())
        self.control = urllib3.HTTPConnectionPool("127.0.0.1", self.fast_port, maxsize=1)
        self.worker = None
        self.beat = None
        self.workers_started = 0
        self.concurrency = concurrency
        self.postgres = PostgresSampler()

    def start_worker(self, concurrency: int, env: dict[str, str]) -> None:
        from tests.processes import BIN, start

        self.workers_started += 1
        self.concurrency = concurrency
        self.counts_file = self.work / f"counts-{self.workers_started}.json"
        env = {**env, "BENCH_COUNTS": str(self.counts_file)}
        self.worker = start(
            [str(BIN / "celery"), "-A", "_realtime_celery", "worker", "--queues",
             "deliveries_api,housekeeping", "--pool", "threads", "--concurrency",
             str(concurrency), "--hostname", f"bench{self.workers_started}@%h",
             "--without-mingle", "--without-gossip"],
            env=env, log=self.work / f"worker-{self.workers_started}.log",
        )  # fmt: skip

    def start_beat(self) -> None:
        from tests.processes import BIN, start

        self.beat = start(
            [str(BIN / "celery"), "-A", "_realtime_celery", "beat", "--schedule",
             str(self.work / "beat-schedule")],
            log=self.work / "beat.log",
        )  # fmt: skip

    def stop_worker(self) -> None:
        from tests.processes import stop

        if self.worker is not None:
            stop(self.worker)
            self.worker = None

    def stop(self) -> None:
        from tests.processes import stop

        self.stop_worker()
        if self.beat is not None:
            stop(self.beat)
        stop(self.receiver)
        self.postgres.stop()

    def dump(self) -> list[tuple[float, str, str]]:
        """Every request the receiver took since the last dump: (arrival, webhook-id, kind)."""
        text = self.control.urlopen("GET", "/_dump").data.decode()
        return [tuple(json.loads(line)) for line in text.splitlines()]

    def waiting(self) -> int:
        return int(self.control.urlopen("GET", "/_count").data)

    def counts(self) -> Counter:
        """What the worker's ``api_item_send`` calls have returned so far (written by the
        worker every 0.5 s)."""
        time.sleep(0.6)
        try:
            return Counter(json.loads(self.counts_file.read_text()))
        except (OSError, ValueError):
            return Counter()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.work.glob("*.log"))
        )


def _ticks(pid: int) -> int:
    """CPU of ``pid`` (all its threads) in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> int:
    """Busy CPU of the whole machine (every core) in clock ticks."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


class PostgresSampler:
    """CPU of the PostgreSQL backends serving the scratch database (their process title
    names it), sampled every 0.25 s so that a backend that exits between two snapshots still
    counts, less its last moments; the server's other databases (other people's tests) are
    left out. A backend that lives less than a sample's interval (a connection per task) is
    missed: ``sessions`` counts those."""

    def __init__(self) -> None:
        import threading

        pid_files = sorted(Path("/var/run/postgresql").glob("*.pid"))
        self.postmaster = int(pid_files[0].read_text().split()[0]) if pid_files else None
        self.mine: dict[int, bool] = {}  # pid: a backend of the scratch database?
        self.seen: dict[int, int] = {}  # pid: its CPU ticks when last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.sample()

    def _is_mine(self, pid: int) -> bool:
        known = self.mine.get(pid)
        if known is None:
            marker = f" {SCRATCH_DB} ".encode()
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                known = int(stat[1]) == self.postmaster and marker in (
                    Path(f"/proc/{pid}/cmdline").read_bytes()
                )
            except (OSError, IndexError, ValueError):
                return False
            self.mine[pid] = known
        return known

    def sample(self) -> int:
        found = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and self._is_mine(int(name)):
                try:
                    found[int(name)] = _ticks(int(name))
                except OSError:
                    continue
        with self._lock:
            self.seen.update(found)
            return sum(self.seen.values())

    def stop(self) -> None:
        self._stop.set()


def _sessions() -> int:
    """Connections opened to the scratch database so far (PostgreSQL's own count)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def cpu_snapshot(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each process of the measurement, and by the machine."""
    import redis

    hz = os.sysconf("SC_CLK_TCK")
    info = redis.Redis.from_url(BROKER).info("cpu")
    snapshot = {
        "worker": _ticks(stack.worker.pid) / hz if stack.worker else 0.0,
        "postgres": stack.postgres.sample() / hz,
        "redis": info["used_cpu_user"] + info["used_cpu_sys"],
        "receiver": _ticks(stack.receiver.pid) / hz,
        "beat": _ticks(stack.beat.pid) / hz if stack.beat else 0.0,
        # This process: all its threads (the sampler's included, a small share).
        "driver": _ticks(os.getpid()) / hz,
        "machine": _machine_ticks() / hz,
        "sessions": _sessions(),
    }
    return snapshot


def cpu_since(stack: Stack, before: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process since ``before``; ``others``: the rest of the machine's busy
    time (other people's work, PostgreSQL's background writers, the kernel's own)."""
    after = cpu_snapshot(stack)
    used = {name: after[name] - before[name] for name in before}
    machine = used.pop("machine")
    used["others"] = max(0.0, machine - sum(v for k, v in used.items() if k != "sessions"))
    return used


# --- setup -------------------------------------------------------------------------------


def _delivery(slug: str, port: int):
    """A client ``slug`` and its real-time delivery to ``port`` (all campaigns, JSON, the
    default columns, signed)."""
    from deliveries.models import Delivery
    from deliveries.services import delivery_save
    from referrals.models import Client

    client = Client.objects.create(name=slug.title(), slug=slug)
    return delivery_save(Delivery(
        client=client, name=f"crm {slug}", kind="api", url=f"http://127.0.0.1:{port}/hook",
    ))  # fmt: skip


class Records:
    """Fresh ingestion records for a client (the demo's generator), made as they are taken;
    the measurements take theirs before their clock starts."""

    def __init__(self, slug: str, seed: int) -> None:
        from referrals.demo import demo_records

        self.slug = slug
        self._source = demo_records(client_slug=slug, campaigns=["c1", "c2"], count=10**8,
                                    seed=seed)  # fmt: skip

    def take(self, count: int) -> list[dict]:
        return [next(self._source) for _ in range(count)]


def _mark() -> int:
    from deliveries.models import DeliveryItem

    return DeliveryItem.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _open_items(delivery, mark: int) -> int:
    from deliveries.models import DeliveryItem

    return (
        DeliveryItem.objects.filter(delivery=delivery, pk__gt=mark)
        .exclude(status=DeliveryItem.Status.DELIVERED).count()
    )  # fmt: skip


def _wait_delivered(stack: Stack, delivery, mark: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _open_items(delivery, mark):
            return True
        time.sleep(0.1)
    return False


def _ingest_stamped(records: list[dict]) -> tuple[list[int], float]:
    """Store ``records``; their ids, and the time their transaction committed."""
    from django.db import transaction

    from referrals.services import referrals_ingest

    stamp: list[float] = []
    with transaction.atomic():
        # Registered before the ledger's hook (which queues the sends), so it runs first,
        # right after COMMIT.
        transaction.on_commit(lambda: stamp.append(time.time()))
        outcomes = referrals_ingest(records=records)
    ids = [o.id for o in outcomes if o.status == "created"]
    assert len(ids) == len(records), [o.as_dict() for o in outcomes if o.status != "created"]
    return ids, stamp[0]


def _paced(sources: list[Records], rate: float, seconds: float, max_batch: int = 20) -> dict:
    """Ingest ``rate`` referrals/s for ``seconds``, the k-th due at start + k/rate; records
    taken from ``sources`` in turn. Commit time per referral id."""
    total = int(rate * seconds)
    prepared = [sources[turn % len(sources)].take(1)[0] for turn in range(total)]
    commits: dict[int, float] = {}
    batches: list[int] = []
    started = time.monotonic()
    done = 0
    while done < total:
        now = time.monotonic()
        due = min(total, int((now - started) * rate) + 1)
        if due <= done:
            time.sleep(max(0.0, started + done / rate - now))
            continue
        count = min(due - done, max_batch)
        ids, committed = _ingest_stamped(prepared[done : done + count])
        commits.update(dict.fromkeys(ids, committed))
        batches.append(count)
        done += count
    elapsed = time.monotonic() - started
    return {"commits": commits, "batches": batches, "achieved": total / elapsed}


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(("p50", "p95", "p99", "max"), math.nan) | {"n": 0}

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99),
            "max": ordered[-1]}  # fmt: skip


def _latencies(records, delivery, mark: int, commits: dict[int, float]) -> list[float]:
    """Milliseconds from commit to first arrival, per item of ``delivery`` after ``mark``."""
    from deliveries.models import DeliveryItem

    first: dict[str, float] = {}
    for arrived, msg_id, _ in records:
        first.setdefault(msg_id, arrived)
    items = DeliveryItem.objects.filter(delivery=delivery, pk__gt=mark)
    return [
        (first[f"msg_{pk}"] - commits[referral_id]) * 1000
        for pk, referral_id in items.values_list("pk", "referral_id")
        if f"msg_{pk}" in first and referral_id in commits
    ]


# --- the measurements ----------------------------------------------------------------------


def _bench(args, work: Path) -> dict:
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    stack = Stack(work, args.concurrency)
    try:
        return _phases(args, stack)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.stop()


# name: (short label, what it is, the worker's environment). "before" runs the worker on the
# code of ``--before`` (the commit before the real-time throughput fixes), unpacked apart.
CONFIGS = {
    "before": ("before", "the platform before its real-time throughput fixes", {}),
    "as_is": ("as it is", "the platform's code and settings now", {}),
    "slim": ("+ slim send", "and the slim send (a prototype: proposal 1)", {"BENCH_SLIM": "1"}),
    "batch": (
        "+ batches",
        "and sends in batches when a transaction stores many referrals (a prototype: proposal 2)",
        {"BENCH_SLIM": "1"},
    ),
}


def _before_tree(args, work: Path) -> str | None:
    """The platform's packages at ``--before``, unpacked under ``work``; None without git."""
    target = work / "before"
    target.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before, "rokt_platform", "deliveries",
             "referrals", "customfields"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return str(target)


def _phases(args, stack: Stack) -> dict:
    stack.start_beat()
    results: dict = {"concurrency": args.concurrency, "configs": {}}
    payloads = None
    for number, config in enumerate(args.configs):
        label, _, env = CONFIGS[config]
        if config == "before":
            tree = _before_tree(args, stack.work)
            if tree is None:
                _say(f"no {args.before} to compare with: skipped")
                continue
            env = {**env, "PYTHONPATH": os.pathsep.join([tree, str(BENCH), str(ROOT)])}
        _say(f"platform {label}, --concurrency {args.concurrency}")
        # A delivery (and client) of its own for each configuration: what one leaves unsent
        # is paused with it, and never reaches the next.
        alpha = _delivery(f"alpha{number}", stack.fast_port)
        records = Records(f"alpha{number}", seed=1)
        stack.start_worker(args.concurrency, env)
        _batching(config == "batch")
        _warm_up(stack, alpha, records)
        measured = results["configs"][config] = {"levels": {}}
        # Paced traffic is one referral a transaction: batching changes nothing there.
        for rate in args.rate_list if config != "batch" else []:
            _say(f"  {rate:g}/s for {args.seconds:g} s...")
            measured["levels"][rate] = _level(args, stack, alpha, [records], rate)
        if config != "batch":
            _say(f"  200/s, 1 in {SLOW_SHARE} to the slow endpoint...")
            bravo = _delivery(f"bravo{number}", stack.slow_port)
            measured["slow"] = _slow_level(
                args, stack, alpha, bravo, records, Records(f"bravo{number}", seed=2),
                drain=config == "as_is",
            )  # fmt: skip
        _say(f"  burst of {args.burst:,}...")
        wait = args.burst_wait if config != "before" else min(args.burst_wait, 150.0)
        measured["burst"] = _burst(args, stack, alpha, records.take(args.burst), wait)
        if payloads is None:
            payloads = _payloads(alpha, measured["burst"]["referral_ids"])
        _end_config(stack, alpha)
    _batching(False)
    _say("baselines...")
    stack.start_worker(args.concurrency, {})
    results["plain"] = _plain_loop(stack, payloads)
    results["bare_burst"] = _bare_burst(stack, payloads)
    results["bare_levels"] = {
        rate: _bare_level(stack, payloads, rate, args.bare_seconds) for rate in args.rate_list
    }
    stack.stop_worker()
    results["sweep"] = {}
    results["sweep_config"] = args.sweep_config
    results["sweep_burst"] = args.burst // 4
    for number, concurrency in enumerate(args.sweep_list):
        _say(f"worker --concurrency {concurrency}, {CONFIGS[args.sweep_config][0]}...")
        alpha = _delivery(f"sweep{number}", stack.fast_port)
        records = Records(f"sweep{number}", seed=1)
        stack.start_worker(concurrency, CONFIGS[args.sweep_config][2])
        _warm_up(stack, alpha, records)
        results["sweep"][concurrency] = {
            "level": _level(args, stack, alpha, [records], max(args.rate_list)),
            "burst": _burst(args, stack, alpha, records.take(results["sweep_burst"])),
        }
        _end_config(stack, alpha)
    _say(f"profile of {args.profile_items:,} sends in this process...")
    alpha = _delivery("profile", stack.fast_port)
    results["profile"] = _profile(stack, alpha, Records("profile", seed=1).take(
        args.profile_items))  # fmt: skip
    return results


def _end_config(stack: Stack, delivery) -> None:
    """Pause the delivery (the tick leaves it alone), stop the worker, and empty the queue of
    whatever it left (the tick's extra messages of the platform as it is)."""
    import redis

    _pause(delivery)
    stack.stop_worker()
    broker = redis.Redis.from_url(BROKER)
    broker.delete("deliveries_api", "housekeeping", "unacked", "unacked_index")


_ENQUEUE = []


def _batching(on: bool) -> None:
    """The batching prototype queues the sends of this process's transactions in chunks."""
    from deliveries import api_runs

    if not _ENQUEUE:
        _ENQUEUE.append(api_runs.api_items_enqueue)
    if on:
        from _realtime_batch import enqueue

        api_runs.api_items_enqueue = enqueue
    else:
        api_runs.api_items_enqueue = _ENQUEUE[0]


def _warm_up(stack: Stack, alpha, records: Records) -> None:
    """Until the worker answers: imports, connections, compiled columns, kept-alive sockets."""
    mark = _mark()
    _ingest_stamped(records.take(50))
    if not _wait_delivered(stack, alpha, mark, timeout=60):
        raise RuntimeError(f"the worker did not deliver the warm-up\n{stack.logs()}")
    time.sleep(0.5)
    stack.dump()


def _level(args, stack: Stack, alpha, sources: list[Records], rate: float) -> dict:
    mark = _mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    paced = _paced(sources, rate, args.seconds)
    complete = _wait_delivered(stack, alpha, mark, timeout=args.wait)
    used = cpu_since(stack, cpu)
    outcomes = stack.counts() - counts
    records = stack.dump()
    latencies = _latencies(records, alpha, mark, paced["commits"])
    return {
        "offered": rate, "achieved": paced["achieved"], "complete": complete,
        "batches": Counter(paced["batches"]), "latency": _percentiles(latencies),
        "cpu": used, "referrals": len(paced["commits"]), "outcomes": outcomes,
    }  # fmt: skip


def _slow_level(
    args, stack: Stack, alpha, bravo, alpha_records, bravo_records, *, drain: bool
) -> dict:
    """200/s, one referral in SLOW_SHARE to bravo's slow endpoint: the others' latency, and
    what the slow endpoint's backlog costs."""
    import redis

    from deliveries.models import DeliveryItem

    broker = redis.Redis.from_url(BROKER)
    rate = max(args.rate_list)
    mark = _mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    paced = _paced([alpha_records] * (SLOW_SHARE - 1) + [bravo_records], rate, args.seconds)
    complete = _wait_delivered(stack, alpha, mark, timeout=args.wait)
    used = cpu_since(stack, cpu)
    outcomes = stack.counts() - counts
    records = stack.dump()
    latencies = _latencies(records, alpha, mark, paced["commits"])
    bravo_items = DeliveryItem.objects.filter(delivery=bravo, pk__gt=mark)
    owed = bravo_items.count()
    at_end = bravo_items.filter(status=DeliveryItem.Status.DELIVERED).count()
    result = {
        "offered": rate, "achieved": paced["achieved"], "complete": complete,
        "latency": _percentiles(latencies), "cpu": used, "bravo_owed": owed,
        "referrals": len(paced["commits"]), "fast_referrals": len(paced["commits"]) - owed,
        "batches": Counter(paced["batches"]),
        "outcomes": outcomes,
        "bravo_delivered_at_end": at_end, "slow_requests": sum(r[2] == "slow" for r in records),
    }  # fmt: skip
    if drain and not args.quick:
        # Drain the slow endpoint's backlog, watching the broker: how many messages wait.
        _say(f"  draining the slow endpoint's {owed - at_end} items...")
        drained_from = time.monotonic()
        cpu = cpu_snapshot(stack)
        samples = []
        deadline = drained_from + max(120.0, 2.5 * (owed - at_end) / 4)
        while time.monotonic() < deadline:
            left = _open_items(bravo, mark)
            samples.append((round(time.monotonic() - drained_from), left,
                            broker.llen("deliveries_api"), broker.hlen("unacked")))  # fmt: skip
            if not left:
                break
            time.sleep(5)
        result.update(
            drain_seconds=time.monotonic() - drained_from,
            drain_samples=samples,
            drain_cpu=cpu_since(stack, cpu),
            drained=not _open_items(bravo, mark),
        )
        records += stack.dump()
        per_id = Counter(r[1] for r in records if r[2] == "slow")
        result["slow_duplicates"] = sum(per_id.values()) - len(per_id)
    _pause(bravo)
    return result


def _pause(delivery) -> None:
    from django.utils import timezone

    delivery.paused_at = timezone.now()
    delivery.paused_reason = "bench: slow scenario over"
    delivery.save(update_fields=["paused_at", "paused_reason"])


def _burst(args, stack: Stack, alpha, records: list[dict], wait: float | None = None) -> dict:
    import redis
    from django.db.models import Max

    from deliveries.models import DeliveryItem
    from referrals.services import referrals_ingest

    time.sleep(1.0)
    mark = _mark()
    stack.dump()
    counts = stack.counts()
    cpu = cpu_snapshot(stack)
    started = time.time()
    ids = []
    for start in range(0, len(records), 1000):
        ids += [o.id for o in referrals_ingest(records=records[start : start + 1000])]
    ingested = time.time()
    complete = _wait_delivered(stack, alpha, mark, timeout=wait or args.burst_wait)
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
        "complete": complete, "cpu": used, "check": _check(alpha, mark, arrivals, len(records)),
        "outcomes": outcomes, "queued_at_end": queued, "referral_ids": ids,
    }  # fmt: skip


def _check(delivery, mark: int, arrivals, expected: int) -> dict:
    """Every item delivered, with exactly one Attempt (delivered), and one request each."""
    from django.db.models import Count, Q

    from deliveries.models import Attempt, DeliveryItem

    items = DeliveryItem.objects.filter(delivery=delivery, pk__gt=mark)
    statuses = Counter(items.values_list("status", flat=True))
    per_item = (
        Attempt.objects.filter(item__in=items).values("item_id")
        .annotate(n=Count("id"), ok=Count("id", filter=Q(outcome="delivered")))
    )  # fmt: skip
    attempts = Counter((row["n"], row["ok"]) for row in per_item)
    requests = Counter(msg_id for _, msg_id, _ in arrivals)
    good = (
        statuses == Counter({"delivered": expected})
        and attempts == Counter({(1, 1): expected})
        and len(requests) == expected and sum(requests.values()) == expected
    )  # fmt: skip
    return {"ok": good, "statuses": dict(statuses),
            "attempts": {f"{n} attempts, {ok} delivered": c for (n, ok), c in attempts.items()},
            "requests": sum(requests.values()), "distinct_requests": len(requests)}  # fmt: skip


def _payloads(alpha, referral_ids: list[int]) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """The burst's requests as the platform builds them, under other webhook-ids."""
    from deliveries.api_runs import build_request
    from referrals.models import Referral

    referrals = Referral.objects.select_related("client", "campaign").in_bulk(referral_ids)
    built = []
    for number, pk in enumerate(referral_ids):
        request = build_request(alpha, referrals[pk], msg_id=f"base_{number}")
        built.append((request.url, request.headers, request.body))
    return built


def _plain_loop(stack: Stack, payloads) -> dict:
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", stack.fast_port, maxsize=1)
    path = "/hook"
    stack.dump()
    started = time.perf_counter()
    for _, headers, body in payloads:
        response = pool.urlopen("POST", path, body=body, headers=dict(headers), retries=False)
        assert response.status == 200
    seconds = time.perf_counter() - started
    assert len(stack.dump()) == len(payloads)
    size = sum(len(body) for _, _, body in payloads) / len(payloads)
    return {"count": len(payloads), "seconds": seconds, "rate": len(payloads) / seconds,
            "body_bytes": size}  # fmt: skip


def _bare_send(stack: Stack, payload) -> None:
    from _realtime_celery import post

    _, headers, body = payload
    post.delay("127.0.0.1", stack.fast_port, "/hook", headers, body.decode())


def _bare_wait(stack: Stack, count: int, timeout: float) -> list:
    arrived: list = []
    deadline = time.monotonic() + timeout
    while len(arrived) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        arrived += stack.dump()
    return arrived


def _bare_burst(stack: Stack, payloads) -> dict:
    time.sleep(1.0)
    stack.dump()
    cpu = cpu_snapshot(stack)
    started = time.time()
    for payload in payloads:
        _bare_send(stack, payload)
    queued = time.time()
    arrived = _bare_wait(stack, len(payloads), timeout=max(60.0, len(payloads) / 100))
    seconds = max(a for a, _, _ in arrived) - started
    return {"count": len(arrived), "seconds": seconds, "rate": len(arrived) / seconds,
            "queue_seconds": queued - started, "cpu": cpu_since(stack, cpu)}  # fmt: skip


def _bare_level(stack: Stack, payloads, rate: float, seconds: float) -> dict:
    total = min(int(rate * seconds), len(payloads))
    stack.dump()
    cpu = cpu_snapshot(stack)
    sent: dict[str, float] = {}
    started = time.monotonic()
    for number in range(total):
        wait = started + number / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sent[f"base_{number}"] = time.time()
        _bare_send(stack, payloads[number])
    arrived = _bare_wait(stack, total, timeout=60)
    used = cpu_since(stack, cpu)
    first: dict[str, float] = {}
    for when, msg_id, _ in arrived:
        first.setdefault(msg_id, when)
    latencies = [(first[m] - t) * 1000 for m, t in sent.items() if m in first]
    return {"offered": rate, "latency": _percentiles(latencies), "cpu": used,
            "referrals": total}  # fmt: skip


# --- where the time of one send goes --------------------------------------------------------


def _profile(stack: Stack, alpha, records: list[dict]) -> dict:
    """``api_item_send`` for fresh items, one after the other in this process (no worker, no
    broker): half timed step by step (wall and CPU, each step's own time, nested steps
    apart), half under cProfile (CPU time) for the functions that cost most."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.db.models import QuerySet

    from deliveries import api_runs, budget
    from deliveries.models import DeliveryItem
    from deliveries.transports import http

    original_enqueue = api_runs.api_items_enqueue
    api_runs.api_items_enqueue = lambda item_ids, delay=None: None  # no worker takes them
    try:
        mark = _mark()
        for start in range(0, len(records), 500):
            _ingest_stamped(records[start : start + 500])
    finally:
        api_runs.api_items_enqueue = original_enqueue
    item_ids = list(
        DeliveryItem.objects.filter(delivery=alpha, pk__gt=mark)
        .order_by("pk").values_list("pk", flat=True)
    )  # fmt: skip
    half = len(item_ids) // 2
    wall: dict[str, float] = Counter()
    cpu: dict[str, float] = Counter()
    statements = Counter()
    stack_: list[list] = []  # [label, wall started, cpu started, wall of children, cpu of ch.]

    def timed(owner, name: str, label: str):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            stack_.append([label, time.perf_counter(), time.thread_time(), 0.0, 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                _, began, began_cpu, child_wall, child_cpu = stack_.pop()
                spent, spent_cpu = time.perf_counter() - began, time.thread_time() - began_cpu
                wall[label] += spent - child_wall
                cpu[label] += spent_cpu - child_cpu
                if stack_:
                    stack_[-1][3] += spent
                    stack_[-1][4] += spent_cpu

        setattr(owner, name, wrapper)
        return owner, name, original

    def count(execute, statement, params, many, context):
        statements[statement.split()[0].upper()] += 1
        return execute(statement, params, many, context)

    patches = [
        timed(api_runs, "api_item_send", "the rest of `api_item_send`"),
        timed(QuerySet, "first", "item SELECT (with delivery and client)"),
        timed(QuerySet, "get", "referral SELECT (with client and campaign)"),
        timed(QuerySet, "update", "item UPDATEs (claim; then status)"),
        timed(QuerySet, "create", "attempt INSERT"),
        timed(api_runs, "_record", "`_record` apart from its statements (transaction)"),
        timed(api_runs, "_health", "`_health`"),
        timed(api_runs, "build_request", "`build_request` (body, signature)"),
        timed(http, "send", "`http.send` (urllib3, SSRF guard, to the receiver and back)"),
        timed(api_runs, "classify", "`classify`"),
        timed(budget.RedisBudget, "acquire", "budget acquire (Redis script)"),
        timed(budget.RedisBudget, "release", "budget release (Redis)"),
    ]
    outcomes = Counter()
    postgres_before = stack.postgres.sample()
    try:
        with connection.execute_wrapper(count):
            for item_id in item_ids[:half]:
                outcomes[api_runs.api_item_send(item_id)] += 1
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
    postgres_ticks = stack.postgres.sample() - postgres_before
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    for item_id in item_ids[half:]:
        outcomes[api_runs.api_item_send(item_id)] += 1
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(25)
    stack.dump()
    per_item = 1000 / half
    return {
        "items": half, "outcomes": dict(outcomes),
        "wall_ms": sum(wall.values()) * per_item, "cpu_ms": sum(cpu.values()) * per_item,
        "steps": {label: (wall[label] * per_item, cpu[label] * per_item) for label in wall},
        "queries": {name: n / half for name, n in statements.items()},
        "postgres_cpu_ms": postgres_ticks / os.sysconf("SC_CLK_TCK") * per_item,
        "top": _top(stats, len(item_ids) - half),
        "pstats": stream.getvalue(),
    }  # fmt: skip


def _top(stats, items: int, count: int = 12) -> list[tuple[str, float, float]]:
    """The functions with the most own time: (name, own ms per item, calls per item)."""
    rows = []
    for (path, line, name), (_, calls, own, _, _) in stats.stats.items():
        where = Path(path).name if path != "~" else ""
        rows.append((f"{where}:{line} {name}" if where else name, own * 1000 / items,
                     calls / items))  # fmt: skip
    rows.sort(key=lambda row: -row[1])
    return rows[:count]


# --- the report ----------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _cpu_line(cpu: dict[str, float], referrals: int) -> str:
    per = {name: seconds * 1000 / max(1, referrals) for name, seconds in cpu.items()}
    order = ["worker", "postgres", "redis", "receiver", "driver", "beat"]
    sessions = cpu["sessions"] / max(1, referrals)
    return " | ".join(f"{per[name]:.2f}" for name in order) + (
        f" | **{sum(per[name] for name in order):.2f}** | {per['others']:.2f} | {sessions:.2f} |"
    )


def _lat_row(label: str, rate: float, lat: dict, referrals: int, batches=None) -> str:
    short = "" if lat["n"] >= referrals else f" (of {referrals:,}: the rest not yet arrived)"
    per_call = (
        f"{sum(k * v for k, v in batches.items()) / sum(batches.values()):.2f}" if batches else ""
    )
    return (
        f"| {label} | {rate:g} | {lat['p50']:,.1f} | {lat['p95']:,.1f} | {lat['p99']:,.1f} | "
        f"{lat['max']:,.0f} | {lat['n']:,}{short} | {per_call} |"
    )


def _aims_table(args, r: dict) -> list[str]:
    top = max(args.rate_list)
    configs = r["configs"]
    rows = [
        "| aim | " + " | ".join(CONFIGS[n][0] for n in args.configs) + " |",
        "| --- |" + " --- |" * len(args.configs),
    ]
    p95s, rates, rises = [], [], []
    for name in args.configs:
        measured = configs[name]
        burst = measured["burst"]
        clean = burst["check"]["ok"] and burst["delivered"] == burst["count"]
        ok = burst["rate"] >= AIMS["rate"] and clean
        rates.append(f"{_met(ok)} ({burst['rate']:,.0f}/s{'' if clean else ', not all'})")
        if "slow" not in measured:
            p95s.append("as + slim send (single sends)")
            rises.append("as + slim send")
            continue
        p95 = measured["levels"][top]["latency"]["p95"]
        rise = measured["slow"]["latency"]["p95"] - p95
        p95s.append(f"{_met(p95 <= AIMS['p95_ms'])} ({p95:,.1f} ms)")
        if p95 > 10 * AIMS["p95_ms"]:  # the level saturates the machine: nothing to compare
            rises.append(f"not measurable, saturated ({rise:+,.0f} ms)")
        else:
            rises.append(f"{_met(rise <= AIMS['slow_rise_ms'])} ({rise:+,.1f} ms)")
    rows += [
        f"| p95 <= {AIMS['p95_ms']:g} ms from commit to arrival at {top:g}/s | "
        + " | ".join(p95s)
        + " |",
        f"| >= {AIMS['rate']:,.0f} referrals/s sustained, everything recorded | "
        + " | ".join(rates)
        + " |",
        f"| 1 in {SLOW_SHARE} to a {SLOW_SECONDS:g} s endpoint raises the others' p95 by <= "
        f"{AIMS['slow_rise_ms']:g} ms | " + " | ".join(rises) + " |",
    ]
    return ["Aims, this run:", "", *rows]


def _report(args, r: dict) -> str:
    args.configs = [name for name in args.configs if name in r["configs"]]
    top = max(args.rate_list)
    configs = r["configs"]
    plain, bare = r["plain"], r["bare_burst"]
    lines = [
        "## Real-time API delivery (`bench/realtime.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, PostgreSQL and Redis on loopback. The worker (`celery "
        f"worker --pool threads --concurrency {r['concurrency']}` on `deliveries_api,"
        "housekeeping`), beat (API tick every 1 s), the receiver (asyncio, a process of its "
        "own, 200 at once; the slow endpoint answers after 2 s), PostgreSQL, Redis and the "
        "driver (ingestion through `referrals_ingest`) all share the two cores. Each request: "
        f"the default column list as JSON, {plain['body_bytes']:,.0f} bytes, signed "
        "(Standard Webhooks). The platform is measured "
        + "; ".join(f"*{CONFIGS[n][0]}*: {CONFIGS[n][1]}" for n in args.configs)
        + " (the proposals are described below, under *Where the time goes*; their "
        "prototypes run from the bench's own Celery app and modules, `deliveries/` is not "
        "changed).",
        "",
        *_aims_table(args, r),
        "",
        f"Latency from the referral's commit to its request's arrival ({args.seconds:g} s a "
        f"level; baselines {args.bare_seconds:g} s a level). The driver ingests one referral "
        "a call, several when it falls behind (*per call*: the mean):",
        "",
        "| path | offered/s | p50 ms | p95 ms | p99 ms | max ms | requests | per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.configs:
        label, measured = CONFIGS[name][0], configs[name]
        if "slow" not in measured:
            continue  # the batching prototype: the paced traffic is the slim send's
        for rate in args.rate_list:
            level = measured["levels"][rate]
            lines.append(_lat_row(f"platform, {label}", rate, level["latency"],
                                  level["referrals"], level.get("batches")))  # fmt: skip
        slow = measured["slow"]
        lines.append(_lat_row(
            f"platform, {label}; 1 in {SLOW_SHARE} to the slow endpoint: the others", top,
            slow["latency"], slow["fast_referrals"], slow.get("batches"),
        ))  # fmt: skip
    for rate in args.rate_list:
        level = r["bare_levels"][rate]
        lines.append(_lat_row("baseline: bare Celery task POSTing (from `delay()`)", rate,
                              level["latency"], level["referrals"]))  # fmt: skip
    lines += [
        "",
        f"Sustained: a burst of {args.burst:,} referrals ingested in 1,000-record calls "
        "(the worker already sending meanwhile), timed from the first call to the last item "
        f"delivered (waiting {args.burst_wait:g} s at most); then every item checked "
        "(delivered, exactly one Attempt, outcome delivered, one request at the receiver). "
        "*First minute*: referrals delivered in the burst's first 60 s, before the API tick "
        "starts taking pending items for lost:",
        "",
        "| path | referrals/s | vs plain loop | notes |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in args.configs:
        burst = configs[name]["burst"]
        check = burst["check"]
        if burst["delivered"] == burst["count"]:
            done = f"all delivered in {burst['seconds']:.0f} s"
        else:
            done = (
                f"**only {burst['delivered']:,} of {burst['count']:,} delivered after "
                f"{burst['seconds']:.0f} s, {burst['queued_at_end']:,} messages still queued**"
            )
        extra = check["requests"] - check["distinct_requests"]
        verdict = "clean" if check["ok"] else (
            f"not clean: statuses {check['statuses']}, attempts per item {check['attempts']}, "
            f"{extra:,} duplicate requests"
        )  # fmt: skip
        lines.append(
            f"| platform, {CONFIGS[name][0]} | {burst['rate']:,.0f} | "
            f"{burst['rate'] / plain['rate']:.2f}x | {done} (ingestion "
            f"{burst['ingest_seconds']:.1f} s); first minute {burst['first_minute_rate']:,.0f}/s; "
            f"check: {verdict} |"
        )
    lines += [
        f"| baseline: bare Celery task POSTing, same worker | {bare['rate']:,.0f} | "
        f"{bare['rate'] / plain['rate']:.2f}x | {bare['count']:,} requests, from the first "
        "`delay()` |",
        f"| baseline: plain urllib3 loop, one connection | {plain['rate']:,.0f} | 1.00x | "
        f"{plain['count']:,} requests |",
    ]
    if r["sweep"]:
        sweep_label = CONFIGS[r["sweep_config"]][0]
        lines += [
            "",
            f"Worker threads, platform {sweep_label} (a burst of {r['sweep_burst']:,}; latency "
            f"at {top:g}/s):",
            "",
            "| `--concurrency` | burst referrals/s | p50 ms | p95 ms | p99 ms |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        measured = configs.get(r["sweep_config"])
        rows = dict(r["sweep"])
        if measured and "slow" in measured:
            rows[r["concurrency"]] = {"level": measured["levels"][top], "burst": measured["burst"]}
        for concurrency in sorted(rows):
            lat = rows[concurrency]["level"]["latency"]
            burst_rate = rows[concurrency]["burst"]["rate"]
            lines.append(f"| {concurrency} | {burst_rate:,.0f} | {lat['p50']:.1f} | "
                         f"{lat['p95']:.1f} | {lat['p99']:.1f} |")  # fmt: skip
    lines += [
        "",
        "CPU milliseconds per referral, by process (PostgreSQL: the backends serving the "
        "bench's database that live long enough to be sampled, every 0.25 s; *others*: the "
        "rest of the machine's busy time meanwhile: backends too short-lived to be sampled, "
        "the kernel, and other people's work on this shared machine; the machine has 2,000 "
        "CPU ms a second), and connections opened to the database (`pg_stat_database`):",
        "",
        "| phase | worker | PostgreSQL | Redis | receiver | driver | beat | all ours | others "
        "| new DB connections per referral |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.configs:
        label, measured = CONFIGS[name][0], configs[name]
        for rate in measured["levels"]:
            level = measured["levels"][rate]
            lines.append(f"| {label}, {rate:g}/s | {_cpu_line(level['cpu'], level['referrals'])}")
        if "slow" in measured:
            slow = measured["slow"]
            lines.append(f"| {label}, {top:g}/s with the slow endpoint | "
                         f"{_cpu_line(slow['cpu'], slow['referrals'])}")  # fmt: skip
        burst = measured["burst"]
        lines.append(f"| {label}, burst | {_cpu_line(burst['cpu'], burst['count'])}")
    lines.append(f"| bare task, burst | {_cpu_line(bare['cpu'], bare['count'])}")
    lines += [
        "",
        "What the worker's `api_item_send` calls returned, per referral of the phase (a send "
        "that finds its endpoint's budget spent, `max_in_flight` = 8 by default, is tried "
        "again 0.5 s later: *before*, through the broker with a countdown; now, put back in "
        "the database for the tick):",
        "",
        "| phase | calls | delivered | waiting for budget | anything else |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in args.configs:
        label, measured = CONFIGS[name][0], configs[name]
        phases = [(f"{rate:g}/s", level) for rate, level in measured["levels"].items()]
        if "slow" in measured:
            phases.append((f"{top:g}/s with the slow endpoint", measured["slow"]))
        phases.append(("burst", {**measured["burst"], "referrals": measured["burst"]["count"]}))
        for phase, result in phases:
            outcomes, count = result["outcomes"], max(1, result["referrals"])
            other = sum(outcomes.values()) - outcomes["delivered"] - outcomes["waiting for budget"]
            lines.append(
                f"| {label}, {phase} | {sum(outcomes.values()) / count:.2f} | "
                f"{outcomes['delivered'] / count:.2f} | "
                f"{outcomes['waiting for budget'] / count:.2f} | {other / count:.2f} |"
            )
    profile = r["profile"]
    lines += [
        "",
        f"One send, step by step ({profile['items']:,} items through `api_item_send` one after "
        "another in the driver: no broker, no worker, one database connection kept): "
        f"{profile['wall_ms']:.2f} ms wall, {profile['cpu_ms']:.2f} ms CPU in Python, "
        f"{profile['postgres_cpu_ms']:.2f} ms CPU in PostgreSQL; "
        f"{sum(profile['queries'].values()):.1f} SQL statements a send "
        f"({', '.join(f'{k} {v:.1f}' for k, v in sorted(profile['queries'].items()))}).",
        "",
        "| step | wall ms | CPU ms |",
        "| --- | ---: | ---: |",
        *(
            f"| {label} | {ms:.2f} | {cpu_ms:.2f} |"
            for label, (ms, cpu_ms) in sorted(profile["steps"].items(), key=lambda x: -x[1][1])
        ),
        "",
        "Most own CPU time under cProfile (ms per send; the profiler inflates every figure):",
        "",
        "| function | own ms | calls |",
        "| --- | ---: | ---: |",
        *(f"| `{name}` | {ms:.3f} | {calls:.1f} |" for name, ms, calls in profile["top"][:8]),
    ]
    if all(name in configs for name in ("as_is", "slim", "batch")):
        lines += _findings(args, r)
    lines += [
        "",
        "Reproduce (PostgreSQL and Redis running): `.venv/bin/python bench/realtime.py` "
        "(full, about 35 minutes, writes this section); `--quick` for a check in under a "
        "minute (the platform as it is, nothing written); `--config` and `--concurrency` to "
        "try one configuration.",
    ]
    return "\n".join(lines)


def _ours(cpu: dict, count: int) -> float:
    """CPU ms per referral of the bench's own processes."""
    names = ["worker", "postgres", "redis", "receiver", "driver", "beat"]
    return sum(cpu[name] for name in names) * 1000 / max(1, count)


def _findings(args, r: dict) -> list[str]:
    """Where the time goes, and the changes that would meet the aims, with this run's figures."""
    top = max(args.rate_list)
    low = min(args.rate_list)
    c = r["configs"]
    as_is, slim, batch = c["as_is"], c["slim"], c["batch"]
    before = c.get("before")

    def per(measured: dict, key: str) -> float:
        return measured["burst"]["cpu"][key] * 1000 / measured["burst"]["count"]

    def p95(measured: dict, rate: float) -> float:
        return measured["levels"][rate]["latency"]["p95"]

    def others_ms(measured: dict) -> float:
        level = measured["levels"][low]
        return level["cpu"]["others"] * 1000 / level["referrals"]

    def sessions(measured: dict) -> float:
        level = measured["levels"][low]
        return level["cpu"]["sessions"] / level["referrals"]

    def waits(measured: dict, phase: dict | None = None) -> float:
        phase = phase or measured["levels"][top]
        return phase["outcomes"]["waiting for budget"] / max(1, phase["referrals"])

    def clean(measured: dict) -> str:
        burst = measured["burst"]
        ok = burst["check"]["ok"] and burst["delivered"] == burst["count"]
        return "every item delivered exactly once" if ok else "NOT every item delivered once"

    level = as_is["levels"][top]
    driver = level["cpu"]["driver"] * 1000 / level["referrals"]
    slim_level = slim["levels"][top]
    others = slim_level["cpu"]["others"] * 1000 / slim_level["referrals"] * top / 2000
    steps = {label.split(" (")[0]: cpu for label, (_, cpu) in r["profile"]["steps"].items()}
    orm = sum(cpu for label, cpu in steps.items() if "SELECT" in label or "UPDATE" in label
              or "INSERT" in label or label.startswith("`_record`"))  # fmt: skip
    bare = r["bare_burst"]
    bare_cpu = _ours(bare["cpu"], bare["count"])
    slim_rise = slim["slow"]["latency"]["p95"] - p95(slim, top)
    put_offs = as_is["slow"]["outcomes"]["waiting for budget"] / args.seconds
    slim_put_offs = slim["slow"]["outcomes"]["waiting for budget"] / args.seconds
    as_is_rise = as_is["slow"]["latency"]["p95"] - p95(as_is, top)
    slow = as_is["slow"]
    drain = ""
    if "drain_samples" in slow:
        peak = max(ready + unacked for _, _, ready, unacked in slow["drain_samples"])
        left = slow["bravo_owed"] - slow["bravo_delivered_at_end"]
        drain = (
            f" Behind the slow endpoint the {left:,} items left took "
            f"{slow['drain_seconds']:.0f} s to drain at its budget's pace (8 requests per 2 s), "
            f"with at most {peak:,} messages queued or reserved in the broker, "
            f"{slow['slow_duplicates']} duplicate requests, and "
            f"{slow['drain_cpu']['worker']:.1f} s of worker CPU."
        )
    lines = [
        "",
        "### Where the time goes, and what would meet the aims",
        "",
    ]
    if before:
        b_burst = before["burst"]
        lines += [
            f"*Before* is the platform at `{args.before}`: this bench found three costs there, "
            "which commit 01479f2 then removed from the platform; measured side by side:",
            "",
            "- **A new PostgreSQL connection for every send.** Celery 5.7's Django fix-up "
            "closes every database connection before and after each task unless "
            "`CELERY_DB_REUSE_MAX` is set, so `CONN_MAX_AGE` never applied in the worker: "
            f"{sessions(before):.2f} connections opened per referral at {low:g}/s before, "
            f"{sessions(as_is):.3f} now; PostgreSQL's share then hid in *others* (the "
            "backends lived too briefly to be sampled). At "
            f"{low:g}/s the p95 went {p95(before, low):,.1f} -> {p95(as_is, low):,.1f} ms, a "
            "difference within this shared machine's noise (*others* took "
            f"{others_ms(before):.1f} and {others_ms(as_is):.1f} CPU ms a referral then).",
            "- **The API tick flooded the queue once the worker fell a minute behind**: every "
            "pending item stored over 60 s earlier was taken for lost and queued again on "
            "every tick, 2,000 a tick. Before, the burst went at "
            f"{b_burst['first_minute_rate']:,.0f}/s for its first minute, then "
            f"{b_burst['delivered']:,} of {b_burst['count']:,} were delivered after "
            f"{b_burst['seconds']:.0f} s with {b_burst['queued_at_end']:,} messages queued; "
            f"now (`queued_at`) {as_is['burst']['rate']:,.0f}/s, {clean(as_is)}.",
            "- **Sends put off for the budget and polled through the broker**: the token was "
            "taken before the claim and held through the claim, the referral's read and the "
            "build, and a spent budget sent the item back to the broker with a 0.5 s "
            f"countdown: {waits(before):.0%} of the calls at {top:g}/s before, "
            f"{waits(as_is):.0%} now that the token covers the request only and a spent "
            "budget leaves the item in the database for the tick.",
            "",
        ]
    lines += [
        "What costs the most now, and two proposals, each tried as a prototype in `bench/` "
        "(they use the platform's own `build_request`, transport, budget and outcome rules "
        "and record the same attempts; `deliveries/` is not changed):",
        "",
        "1. **The ORM's cost per send.** One send on its own costs "
        f"{r['profile']['cpu_ms']:.1f} ms of Python CPU, {orm:.1f} ms of it in the ORM "
        "statements (the item with its 70-column delivery and its client, the referral with "
        "client and campaign, the claim and status UPDATEs, the attempt INSERT and its "
        "transaction): Django compiles every query and builds full model instances for every "
        f"send. The HTTP exchange itself takes {steps.get('`http.send`', 0):.2f} ms, the "
        f"body and signature {steps.get('`build_request`', 0):.2f} ms. Proposed "
        "(`deliveries/api_runs.py`), as `bench/_realtime_slim.py` does: the item and its "
        "delivery's live columns (active, paused, health) in one raw SELECT, the `Delivery` "
        "cached per process by (id, `updated_at`); the claim as `UPDATE ... RETURNING`; the "
        "referral read as one row of the compiled columns' lookups by a statement compiled "
        "once; the attempt and the item's new state in one statement (a CTE) in autocommit. "
        f"Measured: worker CPU {per(as_is, 'worker'):.1f} -> {per(slim, 'worker'):.1f} ms a "
        f"referral in the burst; sustained {as_is['burst']['rate']:,.0f} -> "
        f"{slim['burst']['rate']:,.0f}/s; p95 at {top:g}/s {p95(as_is, top):,.1f} -> "
        f"{p95(slim, top):,.1f} ms.",
        "2. **One Celery task per referral cannot carry 600/s on two cores.** The bare task "
        f"alone costs {bare_cpu:.2f} ms of CPU per request across the processes "
        f"({bare['rate']:,.0f}/s measured); two cores give 2,000 CPU ms a second, so 600/s "
        "leaves 3.3 ms a referral for everything, ingestion included, and the slim send "
        f"still needs {_ours(slim['burst']['cpu'], slim['burst']['count']):.1f}. Proposed "
        "(`deliveries/ledger.py`, `api_runs.py`, `tasks.py`), as `bench/_realtime_batch.py` "
        "does: when one transaction stores many referrals, the on-commit hook queues one "
        "message per chunk of up to 50 items (a lone item keeps the single send: one-a-call "
        "traffic waits for no batch); the batch task reads the items and their deliveries "
        "in one SELECT, takes one budget token per delivery (its requests go one after "
        "another on one kept-alive connection, so `max_in_flight` still bounds the endpoint; "
        "a spent budget is waited for up to 2 s, then the items are left to the tick), "
        "claims them in one `UPDATE ... RETURNING`, reads their referrals in one SELECT, "
        "and records every attempt and item state in one pipelined `executemany` and one "
        f"commit. Measured: {batch['burst']['rate']:,.0f}/s sustained, "
        f"{_ours(batch['burst']['cpu'], batch['burst']['count']):.2f} ms CPU a referral, "
        f"{clean(batch)}.",
        f"3. **Latency at {top:g}/s is queueing for the CPU.** As it is, a referral costs "
        f"{_ours(level['cpu'], level['referrals']):.1f} CPU ms across the processes at "
        f"{top:g}/s ({driver:.1f} ms of it in the driver's ingestion calls, one referral a "
        "call: a collector posting one referral a request pays about as much in the web "
        "process): near or past what two cores give at that rate, so the queue grows and "
        "the tail with it. The aim "
        "needs the machine well below saturation at 200/s: with the slim send a referral "
        f"costs {_ours(slim_level['cpu'], slim_level['referrals']):.1f} ms (p95 "
        f"{p95(slim, top):,.1f} ms, while other people's work took about {others:.0%} of "
        f"the machine). Unloaded, a send adds a few ms to the bare task: p95 at {low:g}/s "
        f"{p95(slim, low):,.1f} ms (slim), {p95(as_is, low):,.1f} ms (as it is), against "
        f"{r['bare_levels'][low]['latency']['p95']:.1f} ms for the bare task.",
        f"4. **The slow endpoint costs the others CPU, through the put-back loop.** The "
        "budget keeps it to `max_in_flight` (8) of the worker's threads, so it never holds "
        "them all (the case in PITFALLS); but every item of it that finds the budget spent "
        "is claimed, its referral read and its request built before the budget is asked, "
        "then put back due 0.5 s later, and the tick queues it again a second later: "
        f"{put_offs:,.0f} such calls a second in the level as it is "
        f"({waits(as_is, as_is['slow']):.2f} per referral), {slim_put_offs:,.0f} with the "
        "slim send, each a task run, a SELECT or two, three UPDATEs and a Redis script for "
        "nothing. CPU per referral rose from "
        f"{_ours(as_is['levels'][top]['cpu'], as_is['levels'][top]['referrals']):.1f} to "
        f"{_ours(as_is['slow']['cpu'], as_is['slow']['referrals']):.1f} ms as it is and "
        f"from {_ours(slim_level['cpu'], slim_level['referrals']):.1f} to "
        f"{_ours(slim['slow']['cpu'], slim['slow']['referrals']):.1f} ms with the slim send, "
        "enough to saturate the machine: the others' p95 rose by "
        f"{slim_rise:+,.0f} ms with the slim send ({as_is_rise:+,.0f} ms as it is, where "
        f"the {top:g}/s level is saturated already).{drain} Proposed (`deliveries/api_runs.py`"
        ", `budget.py`): no polling for a spent budget. Ask the budget before the claim "
        "without taking a token (a count of the live tokens) and leave the item alone, "
        "unclaimed, when there is no room; and have the send that releases a token queue the "
        "next waiting item of its delivery (one `SELECT ... FOR UPDATE SKIP LOCKED` of the "
        "oldest due item), so a slow endpoint's backlog is worked exactly at its pace, for "
        "the cost of its real requests. Not prototyped.",
    ]
    return lines


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the processes and drops the database


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        main()
