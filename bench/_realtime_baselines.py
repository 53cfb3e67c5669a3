"""bench/realtime.py's baselines: the same requests sent by a plain urllib3 loop and by a bare
Celery task."""

from __future__ import annotations

import time

from _realtime_stack import Stack, cpu_since, cpu_snapshot
from harness.stats import percentiles


def build_payloads(
    alpha, referral_ids: list[int]
) -> list[tuple[str, list[tuple[str, str]], bytes]]:
    """The burst's requests as the platform builds them, under other webhook-ids."""
    from deliveries.api_runs import build_request
    from referrals.models import Referral

    referrals = Referral.objects.select_related("client", "campaign").in_bulk(referral_ids)
    built = []
    for number, pk in enumerate(referral_ids):
        request = build_request(alpha, referrals[pk], msg_id=f"base_{number}")
        built.append((request.url, request.headers, request.body))
    return built


def plain_loop(stack: Stack, payloads) -> dict:
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


def bare_task_burst(stack: Stack, payloads) -> dict:
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


def bare_task_level(stack: Stack, payloads, rate: float, seconds: float) -> dict:
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
    return {"offered": rate, "latency": percentiles(latencies), "cpu": used,
            "referrals": total}  # fmt: skip
