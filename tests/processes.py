"""Start the platform's own processes (worker, beat, web) for tests, and always stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def child_database_url() -> str:
    """The URL of the database pytest-django created, for processes outside this one."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("child processes share the test database on PostgreSQL only")
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{user}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def start(
    args: list[str], *, env: dict[str, str] | None = None, log: Path, cwd: Path = ROOT
) -> subprocess.Popen:
    """Start ``args`` in a new process group (so its children die with it), output to ``log``."""
    full_env = {**os.environ, **(env or {})}
    handle = log.open("wb")
    return subprocess.Popen(
        args, cwd=cwd, env=full_env, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


def wait_for(
    condition: Callable[[], object], *, timeout: float, what: str,
    logs: Callable[[], str] | None = None,
) -> object:  # fmt: skip
    """Poll ``condition`` until it is true; on timeout fail with ``logs()`` read then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs() if logs else ''}")


def http_status(url: str) -> int | None:
    """The status a GET of ``url`` answers, or ``None`` while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@dataclass(frozen=True)
class Demo:
    base: str  # http://127.0.0.1:<port>
    log: Path
    env: dict[str, str]  # what its manage.py commands need (its var/, no DATABASE_URL)
    process: subprocess.Popen


@contextmanager
def run_demo(tmp_path: Path) -> Iterator[Demo]:
    """``scripts/run-demo`` as the README runs it (the embedded default: SQLite and the
    file-system broker, no DATABASE_URL or CELERY_BROKER_URL) on a free port with a private
    var/ folder, until its admin answers; stopped afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"ROKT_VAR_DIR": str(tmp_path / "var"), "WEB_BIND": f"127.0.0.1:{port}"}
    removed = {"DATABASE_URL", "CELERY_BROKER_URL"}
    saved = {name: os.environ.pop(name) for name in removed if name in os.environ}
    log = tmp_path / "demo.log"
    try:
        process = start([str(ROOT / "scripts" / "run-demo")], env=env, log=log)
        demo = Demo(base, log, {**os.environ, **env}, process)
    finally:
        os.environ.update(saved)
    try:
        wait_for(lambda: http_status(f"{base}/admin/login/") == 200, timeout=180,
                 what="the web server", logs=lambda: log.read_text()[-3000:])  # fmt: skip
        yield demo
    finally:
        stop(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A Celery worker and a beat, restartable, sharing the test database and the real Redis.

    ``state`` returns lines describing the database, shown with the logs when a wait fails.
    """

    def __init__(
        self, tmp_path: Path, *, queues: str, worker_args: tuple[str, ...] = ("--concurrency", "2"),
        env: dict[str, str] | None = None, state: Callable[[], list[str]] = list,
    ) -> None:  # fmt: skip
        from django.conf import settings

        self.tmp_path = tmp_path
        self.queues = queues
        self.worker_args = worker_args
        self.state = state
        # The same SECRET_KEY as this process: the deliveries' secrets are encrypted with it.
        self.env = {"DATABASE_URL": child_database_url(), "ROKT_VAR_DIR": str(tmp_path),
                    "SECRET_KEY": settings.SECRET_KEY, **(env or {})}  # fmt: skip
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.starts = 0

    def start_worker(self) -> None:
        self.starts += 1
        self.worker = start(
            [str(BIN / "celery"), "-A", "rokt_platform", "worker", "--queues", self.queues,
             *self.worker_args, "--hostname", f"w{self.starts}@%h", "--without-mingle",
             "--without-gossip"],
            env=self.env, log=self.tmp_path / f"worker-{self.starts}.log",
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the worker consumes: it answers a heartbeat (it must consume housekeeping)."""
        from deliveries.models import WorkerHeartbeat
        from deliveries.tasks import heartbeat

        hostname = f"w{self.starts}@"
        heartbeat.delay()
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(hostname__startswith=hostname).exists(),
            timeout=timeout, what=f"worker {hostname} to start", logs=self.logs,
        )  # fmt: skip

    def start_beat(self) -> None:
        self.beat = start(
            [str(BIN / "celery"), "-A", "rokt_platform", "beat", "--schedule",
             str(self.tmp_path / "beat-schedule")],
            env=self.env, log=self.tmp_path / "beat.log",
        )  # fmt: skip

    def logs(self) -> str:
        return (
            "\n".join(self.state())
            + "\n"
            + "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                for p in sorted(self.tmp_path.glob("*.log"))
            )
        )

    def stop(self) -> None:
        for process in (self.worker, self.beat):
            if process is not None:
                stop(process)
