"""The Celery application: broker, queues by purpose, routes and the beat schedule.

Queues are named by what they carry, so a deployment can give each its own workers and a slow
kind of work never waits behind another:

- ``default``: anything not routed elsewhere;
- ``housekeeping``: heartbeats, clean-ups, watchdogs (small, frequent);
- ``deliveries_api``: real-time HTTP deliveries;
- ``deliveries_files``: scheduled SFTP/FTPS file runs (long);
- ``exports``: background exports (long).

Beat must run as exactly one process; ``rokt_platform.beat_lock`` enforces it.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import (
    beat_init,
    celeryd_init,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
)
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rokt_platform.settings")

QUEUES = ("default", "housekeeping", "deliveries_api", "deliveries_files", "exports")

app = Celery("rokt_platform")


def _configure(app: Celery) -> None:
    from django.conf import settings

    broker_url = settings.CELERY_BROKER_URL
    transport_options: dict = {}
    if broker_url.startswith("filesystem://"):
        # One folder for both directions: every process on this machine reads and writes it.
        folder = settings.BROKER_DIR / "queue"
        control = settings.BROKER_DIR / "control"
        for path in (folder, control):
            path.mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(control),
            "store_processed": False,
        }
    else:
        # Redis redelivers unacknowledged tasks after this; long waits live in the database.
        transport_options = {"visibility_timeout": 3600}
    app.conf.update(
        broker_url=broker_url,
        # One Redis client per channel, not one per message (rokt_platform.broker).
        broker_transport=(
            "rokt_platform.broker:Transport" if broker_url.startswith("redis://") else None
        ),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_default_queue="default",
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={
            "housekeeping.*": {"queue": "housekeeping"},
            "deliveries.api.*": {"queue": "deliveries_api"},
            "deliveries.files.*": {"queue": "deliveries_files"},
            "exports.*": {"queue": "exports"},
        },
        # Celery's Django fix-up closes every database connection around every task unless
        # this is set, so CONN_MAX_AGE never applied in workers: a new PostgreSQL backend per
        # real-time send. Connections are instead checked like a web request's (below).
        CELERY_DB_REUSE_MAX=10**9,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        worker_prefetch_multiplier=1,
        beat_schedule_filename=str(settings.CELERY_BEAT_SCHEDULE_FILE),
        beat_schedule={
            "worker-heartbeat": {"task": "housekeeping.heartbeat", "schedule": 60.0},
            # Retention: expired export files too (privacy.targets).
            "retention-purge": {
                "task": "housekeeping.retention_purge",
                "schedule": float(settings.PURGE_EVERY_SECONDS),
            },
            "api-deliveries-due": {
                "task": "housekeeping.api_deliveries_tick",
                "schedule": float(settings.DELIVERY_API_TICK_SECONDS),
            },
            "file-deliveries-due": {
                "task": "housekeeping.deliveries_tick",
                "schedule": float(settings.DELIVERY_TICK_SECONDS),
            },
        },
    )
    if settings.METRICS_TOKEN or settings.METRICS_ALLOWED_NETWORKS:
        # /metrics reads the backlog counted here (metrics/backlog.py); with /metrics off
        # (404) nobody reads it, so nothing counts it.
        app.conf.beat_schedule["metrics-backlog"] = {
            "task": "housekeeping.metrics_backlog",
            "schedule": float(settings.METRICS_BACKLOG_SECONDS),
        }


_configure(app)


# A connection checked (``CONN_HEALTH_CHECKS``) this recently, with no error since, is not
# checked again: a real-time send is a couple of statements, and a ``SELECT 1`` round trip
# before each task was a third. After a pause in the traffic, the first task checks again.
_HEALTH_CHECK_EVERY = 1.0


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(sender=None, **kwargs) -> None:
    """What Django does around each request: drop connections past CONN_MAX_AGE or broken
    (``close_old_connections``), and health-check the others before their next use, at most
    once a second each. Not for a task run eagerly: it runs inside its caller's transaction
    and connection."""
    from rokt_platform.django_internals import connections_recycle

    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    connections_recycle(time.monotonic(), _HEALTH_CHECK_EVERY)


app.autodiscover_tasks()


@worker_ready.connect
@worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    """Once the worker (or a prefork child) is up: see ``rokt_platform.startup``."""
    from rokt_platform.startup import freeze_startup_objects

    freeze_startup_objects()


@celeryd_init.connect
def _hint_queues_without_ack_emulation(sender=None, conf=None, options=None, **kwargs) -> None:
    """A worker of hint queues only drops kombu's ack bookkeeping (``rokt_platform.broker``)."""
    from rokt_platform.broker import hint_worker_options

    if conf is None or not conf.broker_url.startswith("redis://"):
        return
    extra = hint_worker_options((options or {}).get("queues"))
    if extra:
        conf.broker_transport_options = {**conf.broker_transport_options, **extra}


@beat_init.connect
def _hold_beat_lock(sender, **kwargs) -> None:
    from rokt_platform.beat_lock import acquire_beat_lock

    acquire_beat_lock()
