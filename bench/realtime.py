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
from _data import ROOT, use_database, write_section  # noqa: E402

# Overridable so that two people benchmarking on one machine do not share a database or broker.
SCRATCH_DB = os.environ.get("BENCH_REALTIME_DB", "bench_realtime")
BROKER = os.environ.get("BENCH_REALTIME_BROKER", "redis://127.0.0.1:6379/11")
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
        [] if args.quick else [8, 32, 64]
    )  # fmt: skip
    args.profile_items = args.profile_items or (100 if args.quick else 2_000)
    args.contended = args.contended if args.contended is not None else not args.quick
    write = args.write if args.write is not None else not args.quick

    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    _environment(args, work)
    use_database(f"{args.server}/{SCRATCH_DB}_{args.configs[0]}")
    try:
        _fresh_database(args, None, args.configs[0])
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
            _drop(args.server, DATABASES)
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


def _drop(server: str, names) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


DATABASES: list[str] = []  # the scratch databases made so far


def _fresh_database(args, stack: Stack | None, label: str) -> None:
    """Measure on a database of its own (``bench_realtime_<label>``, migrated): each
    configuration of the platform starts from what a platform that has always run it would
    hold, not from what the one measured before it left (before's backlog of 20,000 items
    and its attempts made every later phase's statements cost more). Django, the children
    started from here on and beat (restarted) use it."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections

    name = f"{SCRATCH_DB}_{label}"
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    DATABASES.append(name)
    connections.close_all()
    connections["default"].settings_dict["NAME"] = name
    os.environ["DATABASE_URL"] = f"{args.server}/{name}"
    call_command("migrate", verbosity=0)
    if stack is not None and stack.beat is not None:
        stack.restart_beat()


# --- the processes -------------------------------------------------------------------------


class Stack:
    """Receiver, workers and beat; the workers restartable with another concurrency."""

    def __init__(self, work: Path, processes: int) -> None:
        import urllib3

        self.work = work
        self.receiver = subprocess.Popen(
            [sys.executable, str(BENCH / "_realtime_receiver.py"), "--slow", str(SLOW_SECONDS)],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.fast_port, self.slow_port = map(int, self.receiver.stdout.readline().split())
        self.control = urllib3.HTTPConnectionPool("127.0.0.1", self.fast_port, maxsize=1)
        self.workers: list[subprocess.Popen] = []
        self.counts_files: list[Path] = []
        self.beat = None
        self.workers_started = 0
        self.processes = processes
        self.postgres = PostgresSampler()

    def start_worker(self, concurrency: int, env: dict[str, str], cwd: Path = ROOT) -> None:
        """``processes`` workers of ``concurrency`` threads each, consuming the same queues
        (as a deployment scales its api worker)."""
        from tests.processes import BIN, start

        self.workers_started += 1
        self.counts_files = []
        for number in range(self.processes):
            counts_file = self.work / f"counts-{self.workers_started}-{number}.json"
            self.counts_files.append(counts_file)
            self.workers.append(start(
                [str(BIN / "celery"), "-A", "_realtime_celery", "worker", "--queues",
                 "deliveries_api,housekeeping", "--pool", "threads", "--concurrency",
                 str(concurrency), "--hostname", f"bench{self.workers_started}-{number}@%h",
                 "--without-mingle", "--without-gossip"],
                env={**env, "BENCH_COUNTS": str(counts_file)},
                log=self.work / f"worker-{self.workers_started}-{number}.log", cwd=cwd,
            ))  # fmt: skip

    def start_beat(self) -> None:
        from tests.processes import BIN, start

        self.beat = start(
            [str(BIN / "celery"), "-A", "_realtime_celery", "beat", "--schedule",
             str(self.work / "beat-schedule")],
            log=self.work / "beat.log",
        )  # fmt: skip

    def restart_beat(self) -> None:
        from tests.processes import stop

        stop(self.beat)
        self.start_beat()

    def stop_worker(self) -> None:
        from tests.processes import stop

        for worker in self.workers:
            stop(worker)
        self.workers = []

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
        total: Counter = Counter()
        for counts_file in self.counts_files:
            with contextlib.suppress(OSError, ValueError):  # that worker counted nothing yet
                total.update(json.loads(counts_file.read_text()))
        return total

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
            marker = f" {SCRATCH_DB}".encode()  # any of ours: bench_realtime_<label>
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
        "worker": sum(_ticks(worker.pid) for worker in stack.workers) / hz,
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
    """Store ``records`` as the API's view does (``referrals_ingest`` in a transaction of its
    own); their ids, and the time their transaction committed: when the ledger's on-commit
    hook, run right after COMMIT, queues the sends. (Not an outer transaction of the driver's
    own: it would turn the service's transaction into a savepoint, two round trips a call
    that the API's callers do not pay.)"""
    from deliveries import api_runs
    from referrals.services import referrals_ingest

    stamp: list[float] = []
    enqueue = api_runs.api_items_enqueue

    def stamped(*args, **kwargs):
        stamp.append(time.time())
        return enqueue(*args, **kwargs)

    api_runs.api_items_enqueue = stamped  # the ledger imports it at each call
    try:
        outcomes = referrals_ingest(records=records)
    finally:
        api_runs.api_items_enqueue = enqueue
    ids = [o.id for o in outcomes if o.status == "created"]
    assert len(ids) == len(records), [o.as_dict() for o in outcomes if o.status != "created"]
    return ids, stamp[0] if stamp else time.time()


def _paced(sources: list[Records], rate: float, seconds: float, max_batch: int = 20) -> dict:
    """Ingest ``rate`` referrals/s for ``seconds``, the k-th due at start + k/rate; records
    taken from ``sources`` in turn. Commit time per referral id."""
    total = int(rate * seconds)
    prepared = [sources[turn % len(sources)].take(1)[0] for turn in range(total)]
    from rokt_platform.startup import freeze_startup_objects

    # The level's records, and what earlier measurements left, out of this process's full
    # garbage collections (34-124 ms each seen here, stalling it between a commit and its
    # send or into a backlog): the web process it stands in for holds none of them.
    freeze_startup_objects()
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
CONFIGS = {
    "before": (
        "before",
        "the platform before today's real-time changes (the code at `{before}`: a send task "
        "per item, each through the ORM)",
        {},
    ),
    "as_is": (
        "as it is",
        "the platform's code and settings now (the code at {code}: sends in few raw "
        "statements, a transaction's items in chunks of up to 50)",
        {},
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
    results: dict = {
        "concurrency": args.concurrency, "processes": args.processes, "configs": {},
        "code": _code(),
    }  # fmt: skip
    payloads = None
    for number, config in enumerate(args.configs):
        label, _, env = CONFIGS[config]
        if config == "before":
            tree = _before_tree(args, stack.work)
            if tree is None:
                _say(f"no {args.before} to compare with: skipped")
                continue
            env = {**env, "PYTHONPATH": os.pathsep.join([tree, str(BENCH), str(ROOT)])}
            # Run from the tree too: Celery imports its app with the working directory first
            # on the path, and a package found there (or through the project's editable
            # install) would mix today's code into the worker of before.
            cwd = Path(tree)
        else:
            cwd = ROOT
        if number:
            _fresh_database(args, stack, config)
        _say(f"platform {label}, {args.processes} x --concurrency {args.concurrency}")
        # A delivery (and client) of its own for each configuration: what one leaves unsent
        # is paused with it, and never reaches the next.
        alpha = _delivery(f"alpha{number}", stack.fast_port)
        records = Records(f"alpha{number}", seed=1)
        stack.start_worker(args.concurrency, env, cwd)
        _single_sends(config == "before")
        _warm_up(stack, alpha, records)
        measured = results["configs"][config] = {"levels": {}}
        for rate in args.rate_list:
            _say(f"  {rate:g}/s for {args.seconds:g} s...")
            measured["levels"][rate] = _level(args, stack, alpha, [records], rate)
        _say(f"  200/s, 1 in {SLOW_SHARE} to the slow endpoint...")
        bravo = _delivery(f"bravo{number}", stack.slow_port)
        measured["slow"] = _slow_level(
            args, stack, alpha, bravo, records, Records(f"bravo{number}", seed=2),
            drain=config == "as_is",
        )  # fmt: skip
        if config == "as_is" and args.contended:
            _say(f"  {max(args.rate_list):g}/s beside a busy loop taking one core...")
            measured["contended"] = _contended_level(args, stack, alpha, records)
        _say(f"  burst of {args.burst:,}...")
        measured["burst"] = _burst(args, stack, alpha, records.take(args.burst))
        if payloads is None:
            payloads = _payloads(alpha, measured["burst"]["referral_ids"])
        _end_config(stack, alpha)
        _single_sends(False)
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
        _fresh_database(args, stack, f"sweep{concurrency}")
        _say(f"worker {args.processes} x --concurrency {concurrency}, "
             f"{CONFIGS[args.sweep_config][0]}...")
        alpha = _delivery(f"sweep{number}", stack.fast_port)
        records = Records(f"sweep{number}", seed=1)
        stack.start_worker(concurrency, CONFIGS[args.sweep_config][2])
        _warm_up(stack, alpha, records)
        results["sweep"][concurrency] = {
            "level": _level(args, stack, alpha, [records], max(args.rate_list)),
            "burst": _burst(args, stack, alpha, records.take(results["sweep_burst"])),
        }
        _end_config(stack, alpha)
    _fresh_database(args, stack, "profile")
    _say(f"profile of {args.profile_items:,} sends one a call, as many in chunks...")
    alpha = _delivery("profile", stack.fast_port)
    results["profile"] = _profile(stack, alpha, Records("profile", seed=1).take(
        2 * args.profile_items))  # fmt: skip
    return results


def _code() -> str:
    """The commit measured as it is, and the platform's files changed from it meanwhile
    (others work in the same checkout)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "rokt_platform", "deliveries",
         "referrals", "customfields"],
        capture_output=True, text=True,
    ).stdout.split("\n")  # fmt: skip
    files = [line[3:] for line in changed if line.strip()]
    return f"`{head}`" + (f" with uncommitted changes to {', '.join(files)}" if files else "")


def _end_config(stack: Stack, delivery) -> None:
    """Pause the delivery (the tick leaves it alone), stop the worker, and empty the queue of
    whatever it left (the tick's extra messages of the platform as it is)."""
    import redis

    _pause(delivery)
    stack.stop_worker()
    broker = redis.Redis.from_url(BROKER)
    broker.delete("deliveries_api", "housekeeping", "unacked", "unacked_index")


_ENQUEUE = []


def _single_sends(on: bool) -> None:
    """For the platform before chunks: this process's transactions queue each item as a send
    of its own (``deliveries.api.send``), as the code at ``--before`` did; its worker knows
    no other send task. Off: the platform's own ``api_items_enqueue``."""
    from deliveries import api_runs

    if not _ENQUEUE:
        _ENQUEUE.append(api_runs.api_items_enqueue)
    if on:

        def enqueue(by_delivery, *args, **kwargs) -> None:
            from deliveries.tasks import send_api_item

            items = by_delivery.values() if isinstance(by_delivery, dict) else [by_delivery]
            for item_ids in items:
                for item_id in item_ids:
                    send_api_item.delay(item_id)

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


def _vacuum() -> None:
    """``VACUUM (ANALYZE)`` the scratch database, before each measured phase: autovacuum's
    work in production, done by hand because this machine's PostgreSQL runs with autovacuum
    off. Without it the tables never get statistics and keep every dead version of the rows
    the phases before updated (an item is written three times on its way)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('autovacuum')")
        VACUUMED.add(cursor.fetchone()[0])
        cursor.execute("VACUUM (ANALYZE)")


VACUUMED: set[str] = set()  # what the server's autovacuum setting was


def _level(args, stack: Stack, alpha, sources: list[Records], rate: float) -> dict:
    _vacuum()
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
    _vacuum()
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
    _vacuum()
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
    # This delivery's requests only: another's (the slow endpoint's last chunk, still going
    # when its delivery was paused) may arrive meanwhile.
    ours = {f"msg_{pk}" for pk in items.values_list("pk", flat=True)}
    requests = Counter(msg_id for _, msg_id, _ in arrivals if msg_id in ours)
    good = (
        statuses == Counter({"delivered": expected})
        and attempts == Counter({(1, 1): expected})
        and len(requests) == expected and sum(requests.values()) == expected
    )  # fmt: skip
    stray = sum(1 for _, msg_id, _ in arrivals if msg_id not in ours)
    return {"ok": good, "statuses": dict(statuses),
            "attempts": {f"{n} attempts, {ok} delivered": c for (n, ok), c in attempts.items()},
            "requests": sum(requests.values()), "distinct_requests": len(requests),
            "other_requests": stray}  # fmt: skip


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


PROFILE_CHUNK = 50  # items a call of ``api_items_send`` in the profile (the platform's chunk)


def _profile(stack: Stack, alpha, records: list[dict]) -> dict:
    """The send for fresh items in this process (no worker, no broker), both ways: half the
    items one a call of ``api_item_send``, half ``PROFILE_CHUNK`` a call of
    ``api_items_send``. Of each half, half timed step by step (wall and CPU, each step's own
    time, nested steps apart), half under cProfile (CPU time) for the functions that cost
    most. Everything per item."""
    from deliveries import api_runs
    from deliveries.models import DeliveryItem

    original_enqueue = api_runs.api_items_enqueue
    api_runs.api_items_enqueue = lambda *args, **kwargs: None  # no worker takes them
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
    skipped: list[str] = []
    modes = {
        "single": _profile_way(stack, alpha.pk, item_ids[:half], 1, skipped),
        "chunk": _profile_way(stack, alpha.pk, item_ids[half:], PROFILE_CHUNK, skipped),
    }
    stack.dump()
    return {"modes": modes, "skipped": sorted(set(skipped))}


def _profile_steps():
    """(owner, attribute, label) of each step timed: the ledger statements (``api_runs``
    calls them by the names it imported), the cached delivery, the body, the request, the
    budget; the outermost, ``api_items_send``, keeps what no other step takes."""
    from deliveries import api_runs, budget
    from deliveries.transports import http

    return [
        (api_runs, "api_items_send",
         "the rest of `api_items_send` (grouping, the loop, the request's settings)"),
        (api_runs, "items_claim_and_read",
         "`items_claim_and_read` (the claim, the delivery's live columns, the referrals)"),
        (api_runs, "items_record",
         "`items_record` (attempt and item state, a statement each; transaction)"),
        (api_runs, "items_defer", "`items_defer` (budget spent before the claim)"),
        (api_runs, "items_put_back", "`items_put_back` (budget spent mid-chunk)"),
        (api_runs, "delivery_for_send", "`delivery_for_send` (the delivery, cached)"),
        (api_runs, "build_request", "`build_request` (body, signature)"),
        (http, "send", "`http.send` (urllib3, SSRF guard, to the receiver and back)"),
        (api_runs, "_item_record", "`_item_record` (the attempt as logged, redacted)"),
        (api_runs, "classify", "`classify`"),
        (api_runs, "_health", "`_health`"),
        (budget.RedisBudget, "acquire", "budget acquire (Redis script)"),
        (budget.RedisBudget, "release", "budget release (Redis ZREM)"),
        (budget.RedisBudget, "free", "budget room (Redis ZCOUNT)"),
    ]  # fmt: skip


def _profile_way(
    stack: Stack, delivery_id: int, item_ids: list[int], chunk: int, skipped: list[str]
) -> dict:
    import cProfile
    import io
    import pstats

    from django.db import connection

    from deliveries import api_runs

    def send(ids: list[int]) -> None:
        for start in range(0, len(ids), chunk):
            if chunk == 1:
                outcomes[api_runs.api_item_send(ids[start], delivery_id)] += 1
            else:
                chunk_ids = ids[start : start + chunk]
                for outcome in api_runs.api_items_send(chunk_ids, delivery_id).values():
                    outcomes[outcome] += 1

    half = len(item_ids) // 2
    timed_ids, profiled_ids = item_ids[:half], item_ids[half:]
    wall: dict[str, float] = Counter()
    cpu: dict[str, float] = Counter()
    statements = Counter()
    stack_: list[list] = []  # [label, wall started, cpu started, wall of children, cpu of ch.]

    def timed(owner, name: str, label: str):
        original = getattr(owner, name, None)
        if original is None:
            skipped.append(f"`{getattr(owner, '__name__', owner)}.{name}`")
            return None

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
        statements[statement.split()[0].upper()] += len(params) if many else 1
        return execute(statement, params, many, context)

    outcomes = Counter()
    patches = [timed(*step) for step in _profile_steps()]
    postgres_before = stack.postgres.sample()
    try:
        with connection.execute_wrapper(count):
            send(timed_ids)
    finally:
        for patch in reversed(patches):
            if patch is not None:
                setattr(*patch)
    postgres_ticks = stack.postgres.sample() - postgres_before
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    send(profiled_ids)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(25)
    per_item = 1000 / max(1, len(timed_ids))
    return {
        "items": len(timed_ids), "profiled": len(profiled_ids), "chunk": chunk,
        "outcomes": dict(outcomes),
        "wall_ms": sum(wall.values()) * per_item, "cpu_ms": sum(cpu.values()) * per_item,
        "steps": {label: (wall[label] * per_item, cpu[label] * per_item) for label in wall},
        "queries": {name: n / max(1, len(timed_ids)) for name, n in statements.items()},
        "postgres_cpu_ms": postgres_ticks / os.sysconf("SC_CLK_TCK") * per_item,
        "top": _top(stats, len(profiled_ids)),
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


def _phase_results(measured: dict, top: float) -> list[tuple[str, dict]]:
    """A configuration's phases in report order, each with its ``referrals`` count."""
    phases = [(f"{rate:g}/s", level) for rate, level in measured["levels"].items()]
    if "slow" in measured:
        phases.append((f"{top:g}/s with the slow endpoint", measured["slow"]))
    if "contended" in measured:
        phases.append((f"{top:g}/s beside a busy loop (in *others*)", measured["contended"]))
    phases.append(("burst", {**measured["burst"], "referrals": measured["burst"]["count"]}))
    return phases


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
        f"Measured {r.get('measured_at') or datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, PostgreSQL and Redis on loopback. The worker ("
        + (f"{r['processes']} processes of " if r.get("processes", 1) > 1 else "")
        + f"`celery worker --pool threads --concurrency {r['concurrency']}` on `deliveries_api,"
        "housekeeping`), beat (API tick every 1 s), the receiver (asyncio, a process of its "
        "own, 200 at once; the slow endpoint answers after 2 s), PostgreSQL, Redis and the "
        "driver (ingestion through `referrals_ingest`) all share the two cores. Each request: "
        f"the default column list as JSON, {plain['body_bytes']:,.0f} bytes, signed "
        "(Standard Webhooks). The platform is measured "
        + "; ".join(
            f"*{CONFIGS[n][0]}*: "
            + CONFIGS[n][1].format(before=args.before, code=r.get("code", "HEAD"))
            for n in args.configs
        )
        + " (*before* runs its worker on that commit's packages, unpacked apart; the driver "
        "then queues each item as its own send, as that code did). Each configuration (and "
        "each worker concurrency tried) runs on a database of its own, and each phase starts "
        "on it freshly vacuumed and analyzed (`VACUUM (ANALYZE)`: what autovacuum does in "
        "production; this server's autovacuum is "
        f"{'/'.join(r.get('autovacuum') or sorted(VACUUMED)) or 'unknown'}).",
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
        for rate in args.rate_list:
            level = measured["levels"][rate]
            lines.append(_lat_row(f"platform, {label}", rate, level["latency"],
                                  level["referrals"], level.get("batches")))  # fmt: skip
        slow = measured["slow"]
        lines.append(_lat_row(
            f"platform, {label}; 1 in {SLOW_SHARE} to the slow endpoint: the others", top,
            slow["latency"], slow["fast_referrals"], slow.get("batches"),
        ))  # fmt: skip
        if "contended" in measured:
            busy = measured["contended"]
            lines.append(_lat_row(
                f"platform, {label}; beside a busy loop taking one of the two cores", top,
                busy["latency"], busy["referrals"], busy.get("batches"),
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
        stray = check.get("other_requests", 0)
        verdict = "clean" if check["ok"] else (
            f"not clean: statuses {check['statuses']}, attempts per item {check['attempts']}, "
            f"{extra:,} duplicate requests"
        )  # fmt: skip
        if stray:
            verdict += f" ({stray:,} requests of another delivery meanwhile)"
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
            "Worker threads"
            + (f" in each of the {r['processes']} processes" if r.get("processes", 1) > 1 else "")
            + f", platform {sweep_label} (a burst of {r['sweep_burst']:,}; latency at {top:g}/s):",
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
        label = CONFIGS[name][0]
        for phase, result in _phase_results(configs[name], top):
            lines.append(f"| {label}, {phase} | {_cpu_line(result['cpu'], result['referrals'])}")
    lines.append(f"| bare task, burst | {_cpu_line(bare['cpu'], bare['count'])}")
    lines += [
        "",
        "What the worker's send tasks did, per referral of the phase: their *calls* (one "
        "item each through `api_item_send`, or a chunk of a transaction's items through "
        "`api_items_send`, as it is: one call may carry up to 50 items), the *items* those "
        "calls carried, and what each item came to (a send that finds its endpoint's budget "
        "spent, `max_in_flight` = 8 by default, leaves the item in the database, due, for a "
        "send that holds a token or the tick; *anything else*: an item no longer open, "
        "claimed elsewhere, not yet due, or put back from a chunk that ran long):",
        "",
        "| phase | calls | of them chunks | items | delivered | waiting for budget "
        "| anything else |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.configs:
        label = CONFIGS[name][0]
        for phase, result in _phase_results(configs[name], top):
            lines.append(f"| {label}, {phase} | {_calls_line(result)}")
    lines += _profile_lines(r["profile"])
    if "as_is" in configs:
        lines += _findings(args, r)
    lines += [
        "",
        "Reproduce (PostgreSQL and Redis running): `.venv/bin/python bench/realtime.py` "
        "(full, about 15 minutes, writes this section); `--quick` for a check in under a "
        "minute (the platform as it is, nothing written); `--config`, `--processes` and "
        "`--concurrency` to try one configuration.",
    ]
    return "\n".join(lines)


def _calls_line(result: dict) -> str:
    """Calls, chunk calls, items, and the items' outcomes per referral of a phase."""
    counts, per = result["outcomes"], max(1, result["referrals"])
    single, chunks = counts.get("call:single", 0), counts.get("call:chunk", 0)
    items = sum(n for key, n in counts.items() if not key.startswith("call:"))
    delivered, waiting = counts.get("delivered", 0), counts.get("waiting for budget", 0)
    return (
        f"{(single + chunks) / per:.2f} | {chunks / per:.2f} | {items / per:.2f} | "
        f"{delivered / per:.2f} | {waiting / per:.2f} | "
        f"{(items - delivered - waiting) / per:.2f} |"
    )


def _profile_lines(profile: dict) -> list[str]:
    modes = profile["modes"]
    single, chunk = modes["single"], modes["chunk"]

    def summary(name: str, mode: dict) -> str:
        queries = ", ".join(f"{k} {v:.2f}" for k, v in sorted(mode["queries"].items()))
        return (
            f"{name}: {mode['wall_ms']:.2f} ms wall, {mode['cpu_ms']:.2f} ms CPU in Python, "
            f"{mode['postgres_cpu_ms']:.2f} ms CPU in PostgreSQL; "
            f"{sum(mode['queries'].values()):.2f} SQL statements ({queries})"
        )

    labels = sorted(
        set(single["steps"]) | set(chunk["steps"]),
        key=lambda label: -max(single["steps"].get(label, (0, 0))[1],
                               chunk["steps"].get(label, (0, 0))[1]),
    )  # fmt: skip

    def cell(mode: dict, label: str) -> str:
        if label not in mode["steps"]:
            return " | "
        wall, cpu = mode["steps"][label]
        return f"{wall:.3f} | {cpu:.3f}"

    lines = [
        "",
        f"The send, step by step, in the driver (no broker, no worker, one database connection "
        f"kept; {single['items']:,} items timed and {single['profiled']:,} under cProfile "
        "each way), ms per item: *single*, one item a call of `api_item_send` (the path of "
        f"one-referral-a-call traffic); *chunk*, {chunk['chunk']} items a call of "
        "`api_items_send` (the path of a transaction's many items, and of the tick's). "
        f"{summary('Single', single)}; {summary('chunk', chunk)}.",
    ]
    if profile.get("skipped"):
        lines[-1] += f" Not timed (not in this code): {', '.join(profile['skipped'])}."
    lines += [
        "",
        "| step | single: wall ms | single: CPU ms | chunk: wall ms | chunk: CPU ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {label} | {cell(single, label)} | {cell(chunk, label)} |" for label in labels),
        "",
        "Most own CPU time under cProfile (ms per item; the profiler inflates every figure):",
        "",
        "| way | function | own ms | calls |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, mode in (("single", single), ("chunk", chunk)):
        lines += [f"| {name} | `{fn}` | {ms:.3f} | {calls:.2f} |" for fn, ms, calls in
                  mode["top"][:6]]  # fmt: skip
    return lines


def _ours(cpu: dict, count: int) -> float:
    """CPU ms per referral of the bench's own processes."""
    names = ["worker", "postgres", "redis", "receiver", "driver", "beat"]
    return sum(cpu[name] for name in names) * 1000 / max(1, count)


def _findings(args, r: dict) -> list[str]:
    """What the platform now does, where the time goes, and what is still short of the aims,
    with this run's figures."""
    top, low = max(args.rate_list), min(args.rate_list)
    c = r["configs"]
    now, before = c["as_is"], c.get("before")
    single, chunk = r["profile"]["modes"]["single"], r["profile"]["modes"]["chunk"]

    def p(measured: dict, rate: float, q: str = "p95") -> float:
        return measured["levels"][rate]["latency"][q]

    def ours(phase: dict, count: int | None = None) -> float:
        return _ours(phase["cpu"], count or phase["referrals"])

    def cpu(phase: dict, key: str, count: int | None = None) -> float:
        return phase["cpu"][key] * 1000 / max(1, count or phase["referrals"])

    def counted(phase: dict, key: str, count: int | None = None) -> float:
        return phase["outcomes"].get(key, 0) / max(1, count or phase["referrals"])

    def clean(measured: dict) -> bool:
        burst = measured["burst"]
        return burst["check"]["ok"] and burst["delivered"] == burst["count"]

    def costliest(mode: dict, n: int = 3) -> str:
        steps = sorted(mode["steps"].items(), key=lambda x: -x[1][1])[:n]
        return ", ".join(f"{label.split(' (')[0]} {ms_cpu:.2f}" for label, (_, ms_cpu) in steps)

    burst, level, slow = now["burst"], now["levels"][top], now["slow"]
    n_burst = burst["count"]
    rate_ok = burst["rate"] >= AIMS["rate"] and clean(now)
    p95_ok = p(now, top) <= AIMS["p95_ms"]
    rise = slow["latency"]["p95"] - p(now, top)
    rise_ok = rise <= AIMS["slow_rise_ms"]
    # As in the aims table: a level that saturates the machine leaves nothing to compare.
    saturated = p(now, top) > 10 * AIMS["p95_ms"]
    rise_verdict = "not measurable (saturated)" if saturated else _met(rise_ok).strip("*")
    share = ours(level) * top / 2000  # of the two cores, at the top level
    bare = r["bare_levels"]
    lines = [
        "",
        "### Where the time goes",
        "",
        "How the platform sends: each message names its delivery; `api_items_send` takes "
        "one item or a chunk alike. It takes the `Delivery` from a per-process cache (10 s at "
        "most), then ONE token of the endpoint's budget for the whole call (its requests go one "
        "after another: one slot; no token leaves the items unclaimed and due, flagged in "
        "Redis, for whoever holds a token to take before giving it back, else the tick), then "
        "in one statement (prepared once per connection) "
        "claims the items, reads the delivery's live columns (its version, pause, health) and "
        "the referrals as the body's lookups; a newer version than the cached one is loaded at "
        "once. It sends them one after another and records each attempt and its item's state "
        "in one statement (a CTE, prepared), flushed at least every 50 ms; a chunk goes on, "
        "while its 5 s last, with its delivery's due items (those other calls left for want of "
        "a token), so a busy endpoint's backlog is worked at its budget's pace. The ledger's "
        "on-commit hook queues a lone item as a single send (`deliveries.api.send`) and a "
        "transaction's many, per delivery, in chunks of up to 50 spread over 8 at least "
        "(`deliveries.api.send_many`); the tick queues at most a chunk per free slot of each "
        "delivery's budget. The worker consumes its queues without kombu's acknowledgement "
        "bookkeeping in Redis (hint queues: the ledger holds the work). Ingestion (the driver) "
        "stores up to 10 new referrals and their ledger items in one prepared statement (one "
        "referral: no BEGIN or COMMIT either); what it cannot store whole takes the general "
        "path (look-ups, then INSERT or COPY, then the ledger).",
        "",
    ]
    if before:
        b_burst = before["burst"]
        lines += [
            f"Against *before* (`{args.before}`, a task and five ORM statements per item), "
            "this run:",
            "",
            f"- **Sustained**: {b_burst['rate']:,.0f}/s "
            f"({'every item once' if clean(before) else 'not every item once'}) -> "
            f"{burst['rate']:,.0f}/s ({'every item once' if clean(now) else 'NOT every item once'}"
            f"), {burst['rate'] / max(1e-9, b_burst['rate']):.1f}x; "
            f"{ours(b_burst, b_burst['count']):.2f} -> {ours(burst, n_burst):.2f} CPU ms a "
            f"referral across our processes (worker {cpu(b_burst, 'worker', b_burst['count']):.2f}"
            f" -> {cpu(burst, 'worker', n_burst):.2f}, PostgreSQL "
            f"{cpu(b_burst, 'postgres', b_burst['count']):.2f} -> "
            f"{cpu(burst, 'postgres', n_burst):.2f}), "
            f"{counted(b_burst, 'call:single', b_burst['count']):.2f} -> "
            f"{counted(burst, 'call:single', n_burst) + counted(burst, 'call:chunk', n_burst):.3f}"
            " task calls a referral. The aim "
            f"(>= {AIMS['rate']:,.0f}/s, everything recorded) is {_met(rate_ok).strip('*')}.",
            f"- **Latency**, one referral a call when the driver keeps up: p95 at {low:g}/s "
            f"{p(before, low):,.1f} -> {p(now, low):,.1f} ms, at {top:g}/s "
            f"{p(before, top):,.1f} -> {p(now, top):,.1f} ms (p50 {p(now, top, 'p50'):,.1f}, "
            f"p99 {p(now, top, 'p99'):,.1f} ms now); a referral costs "
            f"{ours(before['levels'][top]):.2f} -> {ours(level):.2f} CPU ms across our processes "
            f"at {top:g}/s. The aim (p95 <= {AIMS['p95_ms']:g} ms at {top:g}/s) is "
            f"{_met(p95_ok).strip('*')}.",
            f"- **The slow endpoint**: the others' p95 rose by "
            f"{before['slow']['latency']['p95'] - p(before, top):+,.1f} ms before and "
            f"{rise:+,.1f} ms now; its items found the budget spent "
            f"{counted(before['slow'], 'waiting for budget'):.2f} -> "
            f"{counted(slow, 'waiting for budget'):.2f} times a referral of the level. The aim "
            f"(<= {AIMS['slow_rise_ms']:g} ms) is {rise_verdict}.",
            "",
        ]
    if "drain_samples" in slow:
        peak = max(ready + unacked for _, _, ready, unacked in slow["drain_samples"])
        left = slow["bravo_owed"] - slow["bravo_delivered_at_end"]
        lines += [
            f"Behind the slow endpoint, the {left:,} items left when the level ended took "
            f"{slow['drain_seconds']:.0f} s to drain (its budget's pace is 8 requests per "
            f"{SLOW_SECONDS:g} s, {left / 4:.0f} s for {left:,}), with at most {peak:,} "
            f"messages queued or reserved in the broker, {slow['slow_duplicates']} duplicate "
            f"requests, and {slow['drain_cpu']['worker']:.1f} s of worker CPU "
            f"({slow['drain_cpu']['worker'] * 1000 / max(1, left):.1f} ms an item).",
            "",
        ]
        samples = slow["drain_samples"]
        if len(samples) >= 5 and slow["drain_seconds"] > 1.5 * left / 4:
            (t0, l0, *_), (t1, l1, *_) = samples[0], samples[min(4, len(samples) - 1)]
            (u0, m0, *_), (u1, m1, *_) = samples[-5], samples[-1]
            lines[-2] += (
                f" It drained at {(l0 - l1) / max(1, t1 - t0):.1f} items/s while {l0:,}-{l1:,} "
                f"were left, {(m0 - m1) / max(1, u1 - u0):.1f}/s while {m0:,}-{m1:,} were: the "
                "tick spreads what it queues over as many chunks as it has 50s of items "
                "(`api_items_queue_due`: a chunk per 50), so a backlog under 400 items gets "
                "fewer chunks than the budget's 8 slots, and a chunk's requests go one after "
                "another (one request at a time for the last 50); a chunk also stops after 5 s, "
                f"{int(5 // SLOW_SECONDS) + 1} requests here, and leaves the rest to the next "
                "tick."
            )
    lines += [
        f"Per item, in the driver's profile: a single send costs {single['cpu_ms']:.2f} ms of "
        f"Python CPU ({single['wall_ms']:.2f} ms wall), most of it in {costliest(single)} ms; "
        f"an item of a {chunk['chunk']}-item chunk {chunk['cpu_ms']:.2f} ms "
        f"({chunk['wall_ms']:.2f} ms wall), most of it in {costliest(chunk)} ms. "
        f"A single send runs {sum(single['queries'].values()):.1f} statements, an item of a "
        f"chunk {sum(chunk['queries'].values()):.2f}.",
        "",
        "What is left:",
        "",
    ]
    # The sustained rate: chunks.
    bare_burst = _ours(r["bare_burst"]["cpu"], r["bare_burst"]["count"])
    after_ingest = burst["seconds"] - burst["ingest_seconds"]
    paced_by = (
        f"the sends ended {after_ingest:.1f} s after the ingestion's {burst['ingest_seconds']:.1f}"
        " s: the rate is the ingestion's as much as the sends'"
        if after_ingest < 0.15 * burst["ingest_seconds"]
        else f"ingestion took {burst['ingest_seconds']:.1f} s of the {burst['seconds']:.1f}"
    )
    per_burst = (
        f"{ours(burst, n_burst):.2f} CPU ms a referral across our processes (worker "
        f"{cpu(burst, 'worker', n_burst):.2f}, PostgreSQL {cpu(burst, 'postgres', n_burst):.2f}, "
        f"driver {cpu(burst, 'driver', n_burst):.2f})"
    )
    waits = counted(burst, "waiting for budget", n_burst)
    put_backs = ""
    if waits > 0.05:
        size = min(PROFILE_CHUNK, math.ceil(1000 / 8))
        put_backs = (
            f" {waits:.2f} items a referral found the budget spent: each 1,000-record "
            f"transaction is queued as {math.ceil(1000 / size)} chunks of {size}, more than the "
            "endpoint's 8 slots; the chunks without a token leave their items unclaimed (one "
            "UPDATE a chunk), and the chunks holding the tokens send them next."
        )
    if rate_ok:
        lines.append(
            f"- **Sustained rate: met** in chunks ({burst['rate']:,.0f}/s; {paced_by}): "
            f"{per_burst}, where the bare Celery task, one per request, costs {bare_burst:.2f}."
            + put_backs
        )
    else:
        lines.append(
            f"- **Sustained rate: not met** ({burst['rate']:,.0f}/s"
            f"{'' if clean(now) else ', and not every item delivered exactly once'}; "
            f"{paced_by}): {per_burst}, against the 3.3 ms 600/s leaves on two cores." + put_backs
        )
    # Latency of single sends (or small chunks, when the driver fell behind).
    bare_p95 = bare[top]["latency"]["p95"]
    if bare_p95 > AIMS["p95_ms"]:
        lines.append(
            f"- **This run's machine was too slow or busy to judge latency at {top:g}/s**: "
            f"even the bare Celery task, storing nothing, had a p95 of {bare_p95:,.1f} ms at "
            f"{top:g}/s and went at {r['bare_burst']['rate']:,.0f}/s in its burst (the issue "
            "measured about 1,000-1,150/s and a p95 of 3-4 ms), the plain loop at "
            f"{r['plain']['rate']:,.0f}/s. The before / as it is comparison holds (same "
            "run, same machine); the absolute figures are this machine's at the time."
        )
    batches = level["batches"]
    per_call = sum(k * v for k, v in batches.items()) / max(1, sum(batches.values()))
    calls = counted(level, "call:single") + counted(level, "call:chunk")
    chunk_share = counted(level, "call:chunk") / max(1e-9, calls)
    paced = (
        "One referral a call is one single send a referral"
        if per_call < 1.05
        else (
            f"The driver, one referral a call when it keeps up, fell behind and stored "
            f"{per_call:.1f} a call on average, so {chunk_share:.0%} of the send calls were "
            "small chunks"
        )
    )
    if p95_ok:
        lines.append(
            f"- **p95 at {top:g}/s: met** ({p(now, top):,.1f} ms; the bare task's "
            f"{bare_p95:.1f} ms). {paced}: "
            f"{ours(level):.2f} CPU ms across our processes (worker {cpu(level, 'worker'):.2f}, "
            f"PostgreSQL {cpu(level, 'postgres'):.2f}, driver {cpu(level, 'driver'):.2f}), "
            f"about {share:.0%} of the two cores at {top:g}/s, the rest of the machine "
            f"(*others*) {cpu(level, 'others') * top / 2000:.0%}."
        )
    else:
        lines.append(
            f"- **p95 at {top:g}/s: not met** ({p(now, top):,.1f} ms; the bare task's "
            f"{bare_p95:,.1f} ms). {paced}: {ours(level):.2f} CPU ms a referral across our "
            "processes (worker "
            f"{cpu(level, 'worker'):.2f}, PostgreSQL {cpu(level, 'postgres'):.2f}, driver "
            f"{cpu(level, 'driver'):.2f}), about {share:.0%} of the two cores at {top:g}/s, with "
            f"the rest of the machine (*others*: other people's work, the kernel) taking "
            f"{cpu(level, 'others') * top / 2000:.0%} meanwhile: the tail is queueing for the "
            "CPU. What is left to cut is the single send itself (its costliest steps above) and "
            "the per-task cost of Celery (the bare task's), which chunks share out and a lone "
            "referral cannot."
        )
    if saturated:
        lines.append(
            f"- **The slow endpoint: not measurable** ({rise:+,.1f} ms on the others' p95): "
            f"the {top:g}/s level saturates the machine without it already, so the tail is the "
            "CPU queue's either way; its items found the budget spent "
            f"{counted(slow, 'waiting for budget'):.2f} times a referral of the level, CPU per "
            f"referral went {ours(level):.2f} -> {ours(slow):.2f} ms."
        )
    elif rise_ok:
        lines.append(
            f"- **The slow endpoint: met** ({rise:+,.1f} ms): the items behind its spent budget "
            "are left unclaimed, for the chunks that hold its tokens and for the tick."
        )
    else:
        lines.append(
            f"- **The slow endpoint: not met** ({rise:+,.1f} ms on the others' p95; their p95 "
            f"{slow['latency']['p95']:,.1f} ms against {p(now, top):,.1f} ms without it). CPU per "
            f"referral went {ours(level):.2f} -> {ours(slow):.2f} ms (worker "
            f"{cpu(level, 'worker'):.2f} -> {cpu(slow, 'worker'):.2f}); its items found the "
            f"budget spent {counted(slow, 'waiting for budget'):.2f} times a referral of the "
            "level: each a task run, an item SELECT, a Redis count and an UPDATE for nothing, "
            "as the single sends of its one-referral calls arrive faster than its budget "
            "frees (8 per 2 s)."
        )
    if "contended" in now:
        busy = now["contended"]
        lines.append(
            f"- **Headroom**: beside a busy loop taking one of the two cores (a neighbour, a "
            f"backup, a report), p95 at {top:g}/s was {busy['latency']['p95']:,.1f} ms (p50 "
            f"{busy['latency']['p50']:,.1f}, p99 {busy['latency']['p99']:,.1f}), "
            f"{'within' if busy['latency']['p95'] <= AIMS['p95_ms'] else '**beyond**'} the "
            f"{AIMS['p95_ms']:g} ms aim; the platform's processes cost {ours(busy):.2f} CPU ms "
            f"a referral meanwhile (against {ours(level):.2f} without it)."
        )
    return lines


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the processes and drops the database


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        main()
