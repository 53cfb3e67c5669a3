"""CPU time per process from /proc: a bench's own processes, PostgreSQL's backends, the machine."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_ticks(pid: int) -> int:
    """CPU of ``pid`` (all its threads) in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> int:
    """Busy CPU of the whole machine (every core) in clock ticks."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


class PostgresSampler:
    """CPU of the PostgreSQL backends serving the scratch databases whose names start with
    ``database_prefix`` (their process title names it), sampled every 0.25 s so that a
    backend that exits between two snapshots still counts, less its last moments; the
    server's other databases (other people's tests) are left out. A backend that lives less
    than a sample's interval (a connection per task) is missed: count sessions for those."""

    def __init__(self, database_prefix: str) -> None:
        import threading

        self.marker = f" {database_prefix}".encode()
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
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                known = int(stat[1]) == self.postmaster and self.marker in (
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
                    found[int(name)] = cpu_ticks(int(name))
                except OSError:
                    continue
        with self._lock:
            self.seen.update(found)
            return sum(self.seen.values())

    def stop(self) -> None:
        self._stop.set()
