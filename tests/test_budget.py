"""An endpoint's budget (``deliveries.budget``): at most ``limit`` tokens at once, each
expiring on its own; a send that found none is looked for by the next holder before it gives
its token back. On the real Redis, and the embedded demo's in-process one."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings

from deliveries.budget import LocalBudget, RedisBudget


@pytest.fixture(params=["redis", "local"])
def budget(request):
    return RedisBudget(settings.CELERY_BROKER_URL) if request.param == "redis" else LocalBudget()


@pytest.fixture
def delivery_id() -> int:
    return uuid.uuid4().int % 10**9  # a budget of its own on the shared Redis


def test_no_more_tokens_than_the_limit(budget, delivery_id):
    first = budget.acquire(delivery_id, 2, 30)
    second = budget.acquire(delivery_id, 2, 30)
    assert first and second and first != second
    assert budget.acquire(delivery_id, 2, 30) is None
    assert budget.free(delivery_id, 2) == 0
    budget.release(delivery_id, first)
    assert budget.free(delivery_id, 2) == 1
    assert budget.acquire(delivery_id, 2, 30) is not None


def test_a_holder_gives_its_token_back_when_nobody_waits(budget, delivery_id):
    token = budget.acquire(delivery_id, 1, 30)
    assert budget.keep_for_waiting(delivery_id, token, 30) is False
    assert budget.free(delivery_id, 1) == 1


def test_a_holder_keeps_its_token_for_a_send_that_found_none(budget, delivery_id):
    token = budget.acquire(delivery_id, 1, 30)
    assert budget.acquire(delivery_id, 1, 30) is None
    budget.note_waiting(delivery_id)  # that send left its items due

    assert budget.keep_for_waiting(delivery_id, token, 30) is True  # goes on with them
    assert budget.free(delivery_id, 1) == 0  # still its own
    # Once: the next look finds nobody waiting, and the token goes back.
    assert budget.keep_for_waiting(delivery_id, token, 30) is False
    assert budget.free(delivery_id, 1) == 1


def test_a_token_that_ran_out_is_not_kept_and_the_waiting_are_left_for_another(delivery_id):
    budget = RedisBudget(settings.CELERY_BROKER_URL)
    stale = budget.acquire(delivery_id, 1, 0.05)
    time.sleep(0.1)  # its holder took too long: the slot is free again
    fresh = budget.acquire(delivery_id, 1, 30)
    assert fresh is not None
    budget.note_waiting(delivery_id)

    assert budget.keep_for_waiting(delivery_id, stale, 30) is False
    assert budget.free(delivery_id, 1) == 0  # the fresh holder's, untouched
    assert budget.keep_for_waiting(delivery_id, fresh, 30) is True  # the flag was left for it
