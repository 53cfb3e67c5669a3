"""bench/realtime.py's report: the tables of docs/PERFORMANCE.md's real-time section."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from _realtime_config import AIMS, CONFIGS, SLOW_SECONDS, SLOW_SHARE
from _realtime_findings import findings_lines
from _realtime_stack import VACUUMED
from harness.report import met


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
        rates.append(f"{met(ok)} ({burst['rate']:,.0f}/s{'' if clean else ', not all'})")
        p95 = measured["levels"][top]["latency"]["p95"]
        rise = measured["slow"]["latency"]["p95"] - p95
        p95s.append(f"{met(p95 <= AIMS['p95_ms'])} ({p95:,.1f} ms)")
        if p95 > 10 * AIMS["p95_ms"]:  # the level saturates the machine: nothing to compare
            rises.append(f"not measurable, saturated ({rise:+,.0f} ms)")
        else:
            rises.append(f"{met(rise <= AIMS['slow_rise_ms'])} ({rise:+,.1f} ms)")
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


def render_report(args, r: dict) -> str:
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
        lines += findings_lines(args, r)
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
