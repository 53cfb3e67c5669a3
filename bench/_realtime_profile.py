"""bench/realtime.py's profile: one send's steps timed, and cProfile's costliest functions."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from _realtime_ingest import ingest_stamped, item_mark
from _realtime_stack import Stack

PROFILE_CHUNK = 50  # items a call of ``api_items_send`` in the profile (the platform's chunk)


def profile_sends(stack: Stack, alpha, records: list[dict]) -> dict:
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
        mark = item_mark()
        for start in range(0, len(records), 500):
            ingest_stamped(records[start : start + 500])
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
