"""The Celery app for bench/realtime.py's worker: the platform's own app and tasks, plus one
bare task for the baseline, which POSTs a ready-made request with plain urllib3 and stores
nothing.

The worker runs ``celery -A _realtime_celery worker ...`` with ``bench/`` on PYTHONPATH.

``BENCH_COUNTS=path`` counts what the send tasks did: their calls (one item, or a chunk
where the platform has ``api_items_send``) and what each item came to (delivered, waiting for
budget...); ``BENCH_PROFILE=prefix`` profiles every thread (CPU time) and dumps the profiles
when the worker stops. The worker may run an older platform (``--before``, on PYTHONPATH
first): whatever it lacks is not counted.
"""

from __future__ import annotations

import os
import threading

import urllib3

from rokt_platform.celery import app

_pools: dict[tuple[str, int], urllib3.HTTPConnectionPool] = {}
_lock = threading.Lock()


def _pool(host: str, port: int) -> urllib3.HTTPConnectionPool:
    with _lock:
        pool = _pools.get((host, port))
        if pool is None:
            pool = _pools[(host, port)] = urllib3.HTTPConnectionPool(
                host, port, maxsize=64, block=False, retries=False
            )
        return pool


# On the real sends' queue, so it goes through the same broker path and worker threads.
@app.task(name="bench.realtime.post", ignore_result=True, queue="deliveries_api")
def post(host: str, port: int, path: str, headers: list[list[str]], body: str) -> int:
    response = _pool(host, port).urlopen(
        "POST", path, body=body.encode(), headers=dict(headers), retries=False, redirect=False
    )
    return response.status


_installed = threading.Event()
_outcomes: dict[str, int] = {}


def _install(**kwargs) -> None:
    """Before the first task's body runs (Django is set up by then): a count of what each
    send task did, written every 0.5 s to ``BENCH_COUNTS`` (a JSON file): ``call:single``
    and ``call:chunk`` (calls of ``api_item_send`` and ``api_items_send``), and for each
    outcome the items that came to it, so the bench sees how many sends were put off."""
    with _lock:
        if _installed.is_set():
            return
        from deliveries import tasks

        # Under the GIL: exact enough. The tasks call these names from their module, so one
        # chunk's items are counted once (``api_item_send`` calls ``api_items_send`` of
        # ``api_runs``, not this wrapper).
        single = tasks.api_item_send

        def counted(item_id: int, *delivery_id) -> str:  # the delivery: in messages now
            outcome = single(item_id, *delivery_id)
            _outcomes["call:single"] = _outcomes.get("call:single", 0) + 1
            _outcomes[outcome] = _outcomes.get(outcome, 0) + 1
            return outcome

        tasks.api_item_send = counted
        chunk = getattr(tasks, "api_items_send", None)  # not in the platform before chunks
        if chunk is not None:

            def counted_chunk(item_ids: list[int], *delivery_id) -> dict[int, str]:
                outcomes = chunk(item_ids, *delivery_id)
                _outcomes["call:chunk"] = _outcomes.get("call:chunk", 0) + 1
                for outcome in outcomes.values():
                    _outcomes[outcome] = _outcomes.get(outcome, 0) + 1
                # Items no longer open are left out of the answer (one item's call says so).
                missing = len(set(item_ids)) - len(outcomes)
                if missing > 0:
                    _outcomes["not open"] = _outcomes.get("not open", 0) + missing
                return outcomes

            tasks.api_items_send = counted_chunk
        _installed.set()
    if os.environ.get("BENCH_COUNTS"):
        threading.Thread(target=_write_counts, daemon=True).start()


def _write_counts() -> None:
    import json
    import time

    path = os.environ["BENCH_COUNTS"]
    while True:
        time.sleep(0.5)
        with open(f"{path}.tmp", "w") as handle:
            json.dump(dict(_outcomes), handle)
        os.replace(f"{path}.tmp", path)


if os.environ.get("BENCH_COUNTS"):
    from celery.signals import task_prerun

    task_prerun.connect(_install, weak=False)


if os.environ.get("BENCH_PROFILE"):
    # Where the worker's CPU goes: a CPU-time profiler in every thread that runs tasks and in
    # the consumer's (main) thread, dumped when the worker stops (BENCH_PROFILE.<n> files).
    import cProfile
    import time

    from celery.signals import task_prerun, worker_init, worker_shutdown

    _profilers: list[cProfile.Profile] = []
    _local = threading.local()

    def _start_profiler() -> None:
        if getattr(_local, "profiler", None) is None:
            _local.profiler = cProfile.Profile(time.thread_time)
            _profilers.append(_local.profiler)
            _local.profiler.enable()

    def _profile_thread(**kwargs) -> None:
        _start_profiler()

    def _dump_profiles(**kwargs) -> None:
        for number, profiler in enumerate(list(_profilers)):
            profiler.create_stats()
            profiler.dump_stats(f"{os.environ['BENCH_PROFILE']}.{number}")

    worker_init.connect(_profile_thread, weak=False)
    task_prerun.connect(_profile_thread, weak=False)
    worker_shutdown.connect(_dump_profiles, weak=False)


__all__ = ["app", "post"]
