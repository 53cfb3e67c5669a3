"""bench/realtime.py's processes (receiver, workers, beat), their CPU, and its scratch databases."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _realtime_config import BROKER, SCRATCH_DB, SECRET_KEY, SLOW_SECONDS
from harness.cpu import PostgresSampler, cpu_ticks, machine_ticks
from harness.database import ROOT, drop_databases  # noqa: F401 (realtime.py's)

BENCH = Path(__file__).resolve().parent


def environment_set(args, work: Path) -> None:
    """The same settings for this process and its children (before Django starts)."""
    os.environ.update({
        "SECRET_KEY": SECRET_KEY,
        "CELERY_BROKER_URL": BROKER,
        "DELIVERY_ALLOWED_NETWORKS": "127.0.0.0/8",
        "DELIVERY_API_TICK_SECONDS": "1",
        "ROKT_VAR_DIR": str(work),
        "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
    })  # fmt: skip


DATABASES: list[str] = []  # the scratch databases made so far


def fresh_database(args, stack: Stack | None, label: str) -> None:
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
        self.postgres = PostgresSampler(SCRATCH_DB)  # any of ours: bench_realtime_<label>

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


def sessions_opened() -> int:
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
        "worker": sum(cpu_ticks(worker.pid) for worker in stack.workers) / hz,
        "postgres": stack.postgres.sample() / hz,
        "redis": info["used_cpu_user"] + info["used_cpu_sys"],
        "receiver": cpu_ticks(stack.receiver.pid) / hz,
        "beat": cpu_ticks(stack.beat.pid) / hz if stack.beat else 0.0,
        # This process: all its threads (the sampler's included, a small share).
        "driver": cpu_ticks(os.getpid()) / hz,
        "machine": machine_ticks() / hz,
        "sessions": sessions_opened(),
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


def vacuum() -> None:
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
