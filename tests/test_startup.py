"""Long-running processes leave their start-up objects out of full garbage collections
(``rokt_platform.startup``): a worker once it is ready, a web process once its application
is loaded."""

from __future__ import annotations

import gc
import importlib

import pytest
from celery.signals import worker_ready


@pytest.fixture(autouse=True)
def _thawed():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_ready_worker_freezes_what_it_built():
    from rokt_platform.celery import app

    assert gc.get_freeze_count() == 0
    worker_ready.send(sender=app)
    assert gc.get_freeze_count() > 10_000  # Django, Celery and the project's modules


def test_the_web_application_freezes_what_it_built():
    import rokt_platform.wsgi

    gc.unfreeze()
    importlib.reload(rokt_platform.wsgi)
    assert gc.get_freeze_count() > 10_000
