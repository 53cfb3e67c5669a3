"""bench/realtime.py's settings: scratch database, broker, aims, the configurations measured."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.database import ROOT

# Overridable so that two people benchmarking on one machine do not share a database or broker.
SCRATCH_DB = os.environ.get("BENCH_REALTIME_DB", "bench_realtime")


BROKER = os.environ.get("BENCH_REALTIME_BROKER", "redis://127.0.0.1:6379/11")
# The worker decrypts the deliveries' secrets with the key this process encrypted them with.


SECRET_KEY = "bench-realtime-secret-key-0123456789-not-for-production"  # noqa: S105


AIMS = {"p95_ms": 25.0, "rate": 600.0, "slow_rise_ms": 10.0}


SLOW_SECONDS = 2.0


SLOW_SHARE = 10  # one referral in SLOW_SHARE goes to the slow endpoint


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


def before_tree(args, work: Path) -> str | None:
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


def code_measured() -> str:
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
