"""The Celery app for bench/realtime.py's worker: the platform's own app and tasks, plus one
bare task for the baseline, which POSTs a ready-made request with plain urllib3 and stores
nothing.

The worker runs ``celery -A _realtime_celery worker ...`` with ``bench/`` on PYTHONPATH.

``BENCH_SLIM=1`` replaces ``api_item_send`` by the prototype in ``_realtime_slim.py`` (the
batching prototype's task, ``send_batch``, is always registered; only the bench queues it).
``BENCH_COUNTS=path`` counts what each send did (delivered, waiting for budget...);
``BENCH_PROFILE=prefix`` profiles every thread (CPU time) and dumps the profiles when the
worker stops.
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


# The batching prototype's task (bench/_realtime_batch.py): one message per chunk of items.
@app.task(name="bench.realtime.send_batch", ignore_result=True, queue="deliveries_api")
def send_batch(item_ids: list[int]) -> None:
    from _realtime_batch import send_batch as run

    _install()
    for outcome, count in run(item_ids).items():
        _outcomes[outcome] = _outcomes.get(outcome, 0) + count


_installed = threading.Event()
_outcomes: dict[str, int] = {}


def _install(**kwargs) -> None:
    """Before the first task's body runs (Django is set up by then): the prototype when
    asked, and a count of what each ``api_item_send`` call did, written every 0.5 s to
    ``BENCH_COUNTS`` (a JSON file), so the bench sees how many sends were put off."""
    with _lock:
        if _installed.is_set():
            return
        from deliveries import tasks

        if os.environ.get("BENCH_SLIM"):
            from _realtime_slim import install

            install()
        send = tasks.api_item_send

        def counted(item_id: int) -> str:
            outcome = send(item_id)
            _outcomes[outcome] = _outcomes.get(outcome, 0) + 1  # under the GIL: exact enough
            return outcome

        tasks.api_item_send = counted
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


if os.environ.get("BENCH_SLIM") or os.environ.get("BENCH_COUNTS"):
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


__all__ = ["app", "post", "send_batch"]
