"""bench/realtime.py's driver: ingestion paced as the API's callers pace it, commit times,
arrivals."""

from __future__ import annotations

import time
from collections import Counter

from _realtime_stack import Stack


def delivery_create(slug: str, port: int):
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


def item_mark() -> int:
    from deliveries.models import DeliveryItem

    return DeliveryItem.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def open_items(delivery, mark: int) -> int:
    from deliveries.models import DeliveryItem

    return (
        DeliveryItem.objects.filter(delivery=delivery, pk__gt=mark)
        .exclude(status=DeliveryItem.Status.DELIVERED).count()
    )  # fmt: skip


def wait_delivered(stack: Stack, delivery, mark: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not open_items(delivery, mark):
            return True
        time.sleep(0.1)
    return False


def ingest_stamped(records: list[dict]) -> tuple[list[int], float]:
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


def ingest_paced(sources: list[Records], rate: float, seconds: float, max_batch: int = 20) -> dict:
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
        ids, committed = ingest_stamped(prepared[done : done + count])
        commits.update(dict.fromkeys(ids, committed))
        batches.append(count)
        done += count
    elapsed = time.monotonic() - started
    return {"commits": commits, "batches": batches, "achieved": total / elapsed}


def latencies_ms(records, delivery, mark: int, commits: dict[int, float]) -> list[float]:
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


_ENQUEUE = []


def single_sends(on: bool) -> None:
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


def pause(delivery) -> None:
    from django.utils import timezone

    delivery.paused_at = timezone.now()
    delivery.paused_reason = "bench: slow scenario over"
    delivery.save(update_fields=["paused_at", "paused_reason"])


def exactly_once_check(delivery, mark: int, arrivals, expected: int) -> dict:
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
