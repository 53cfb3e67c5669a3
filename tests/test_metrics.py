"""/metrics: who may read it, and that its figures are the platform's state (docs/METRICS.md).

Read the way Prometheus reads it: the exposition parsed by prometheus_client's own parser.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from celery.signals import before_task_publish
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import Attempt, Batch, DeliveryItem, WorkerHeartbeat
from deliveries.pausing import delivery_pause
from metrics.beat import beat_tick_enable
from referrals.models import ExportAudit
from referrals.services import referrals_ingest
from tests.conftest import PASSWORD
from tests.factories import make_file_delivery, make_referral, referral_record

TOKEN = "s3cret-scrape-token-0123456789"
ALERTS = Path(__file__).resolve().parent.parent / "docs" / "alerts.yml"


def scrape(client, token: str | None = TOKEN) -> dict[str, dict[frozenset, float]]:
    """Sample name -> {labels: value}."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[frozenset, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def one(samples, name: str, **labels: str) -> float:
    return samples[name][frozenset(labels.items())]


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return TOKEN


# --- Who may read it --------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_is_off_and_answers_404_when_neither_a_token_nor_networks_are_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.django_db
def test_a_missing_token_is_401_and_a_wrong_one_403_both_with_an_empty_body(client, token):
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}x")
    not_bearer = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {token}")

    assert (missing.status_code, missing.content) == (401, b"")
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert (wrong.status_code, wrong.content) == (403, b"")
    assert (not_bearer.status_code, not_bearer.content) == (401, b"")


@pytest.mark.django_db
def test_the_right_token_reads_the_figures(client, token):
    assert "rokt_metrics_window_seconds" in scrape(client)


@pytest.mark.django_db
def test_the_allowlist_admits_its_networks_only(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    refused = client.get("/metrics")  # the test client comes from 127.0.0.1
    admitted = client.get("/metrics", REMOTE_ADDR="10.1.2.3")

    assert (refused.status_code, refused.content) == (403, b"")
    assert admitted.status_code == 200


@pytest.mark.django_db
def test_with_both_set_an_allowed_address_still_needs_the_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 401
    assert scrape(client)
    outside = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert outside.status_code == 403


@pytest.mark.django_db
def test_a_logged_in_user_gets_nothing_without_the_token(client, token, user_a, manager):
    for user in (user_a, manager):
        assert client.login(username=user.username, password=PASSWORD)
        response = client.get("/metrics")
        assert (response.status_code, response.content) == (401, b"")


# --- What it says ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_delivery_shows_its_backlog_its_oldest_item_and_whether_it_is_paused(
    client, token, client_a
):
    delivery = make_file_delivery(client_a)
    idle = make_file_delivery(client_a)
    for _ in range(4):
        make_referral(client_a)
    # The owed items of ``delivery``: one of them an hour old. ``idle`` owes the same four.
    DeliveryItem.objects.filter(delivery=idle).delete()
    oldest = DeliveryItem.objects.filter(delivery=delivery).order_by("id").first()
    DeliveryItem.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - dt.timedelta(hours=1)
    )
    delivery_pause(delivery, "Paused by a test.")

    samples = scrape(client)

    labels = {"delivery": str(delivery.pk), "client": "alpha", "kind": "sftp"}
    idle_labels = {**labels, "delivery": str(idle.pk)}
    assert one(samples, "rokt_delivery_pending_items", **labels) == 4
    assert 3600 <= one(samples, "rokt_delivery_oldest_pending_seconds", **labels) < 3660
    assert one(samples, "rokt_delivery_paused", **labels) == 1
    assert one(samples, "rokt_delivery_failing", **labels) == 0
    assert one(samples, "rokt_delivery_pending_items", **idle_labels) == 0
    assert one(samples, "rokt_delivery_oldest_pending_seconds", **idle_labels) == 0
    assert one(samples, "rokt_delivery_paused", **idle_labels) == 0


@pytest.mark.parametrize(
    ("token", "networks", "scheduled"),
    [("", [], False), ("s3cret", [], True), ("", ["10.0.0.0/8"], True)],
)
def test_beat_counts_the_backlog_only_when_metrics_are_on(settings, token, networks, scheduled):
    from celery import Celery

    from rokt_platform.celery import _configure

    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = token, networks
    app = Celery("schedule-check")
    _configure(app)

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert ("housekeeping.metrics_backlog" in tasks) is scheduled
    assert "housekeeping.api_deliveries_tick" in tasks  # the rest of the schedule stays


@pytest.mark.django_db
def test_the_backlog_is_the_workers_recent_count_or_counted_when_that_is_old(
    client, token, client_a, settings
):
    from metrics.models import BacklogSnapshot
    from metrics.tasks import metrics_backlog

    settings.METRICS_BACKLOG_SECONDS = 15
    delivery = make_file_delivery(client_a)
    labels = {"delivery": str(delivery.pk), "client": "alpha", "kind": "sftp"}
    make_referral(client_a)
    assert one(scrape(client), "rokt_delivery_pending_items", **labels) == 1  # counted now

    make_referral(client_a)
    recent = scrape(client)  # the count of a moment ago, as the worker's would be
    metrics_backlog()  # what beat has a worker run every METRICS_BACKLOG_SECONDS
    recounted = scrape(client)
    make_referral(client_a)
    BacklogSnapshot.objects.update(taken_at=timezone.now() - dt.timedelta(minutes=5))
    counted_again = scrape(client)  # no worker for five minutes: the scrape counts

    assert one(recent, "rokt_delivery_pending_items", **labels) == 1
    assert 0 <= one(recent, "rokt_delivery_backlog_age_seconds") < 15
    assert one(recounted, "rokt_delivery_pending_items", **labels) == 2
    assert one(counted_again, "rokt_delivery_pending_items", **labels) == 3
    assert one(counted_again, "rokt_delivery_backlog_age_seconds") == 0


@pytest.mark.django_db
def test_a_delivery_failing_in_the_admin_is_failing_here(client, token, client_a):
    from deliveries.selectors import deliveries_failing_for

    delivery = make_file_delivery(client_a, failing_since=timezone.now(), kind="ftps")
    gone = make_file_delivery(client_a, failing_since=timezone.now(), active=False)

    samples = scrape(client)

    labels = {"delivery": str(delivery.pk), "client": "alpha", "kind": "ftps"}
    assert one(samples, "rokt_delivery_failing", **labels) == 1
    # An inactive delivery is switched off, not failing: no series, as in the admin's banner.
    assert str(gone.pk) not in {dict(k)["delivery"] for k in samples["rokt_delivery_failing"]}
    assert [d.pk for d in deliveries_failing_for(_superuser())] == [delivery.pk]


def _superuser():
    from django.contrib.auth.models import User

    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.mark.django_db
def test_attempts_of_the_window_are_counted_by_outcome_with_their_latency(
    client, token, client_a, settings
):
    settings.METRICS_WINDOW_SECONDS = 300
    delivery = make_file_delivery(client_a)  # attempts name a delivery only
    now = timezone.now()
    for outcome, latency_ms, age in [
        ("delivered", 40.0, 10),
        ("delivered", 400.0, 20),
        ("failed", None, 30),
        ("rejected", 90.0, 40),
        ("failed", 10.0, 301),  # before the window
    ]:
        _attempt(
            delivery, outcome=outcome, latency_ms=latency_ms, at=now - dt.timedelta(seconds=age)
        )
    _attempt(delivery, outcome="delivered", latency_ms=5.0, at=now, test=True)  # a test send

    samples = scrape(client)

    labels = {"delivery": str(delivery.pk), "client": "alpha", "kind": "sftp"}
    attempts = {
        outcome: one(samples, "rokt_delivery_attempts_recent", **labels, outcome=outcome)
        for outcome in ("delivered", "failed", "rejected")
    }
    assert attempts == {"delivered": 2, "failed": 1, "rejected": 1}
    buckets = samples["rokt_delivery_send_seconds_recent_bucket"]
    assert buckets[frozenset({("le", "0.05")})] == 1
    assert buckets[frozenset({("le", "0.1")})] == 2
    assert buckets[frozenset({("le", "0.5")})] == 3
    assert buckets[frozenset({("le", "+Inf")})] == 3  # the failure had no latency to measure
    assert one(samples, "rokt_delivery_send_seconds_recent_gsum") == pytest.approx(0.53)
    assert one(samples, "rokt_metrics_window_seconds") == 300


def _attempt(delivery, *, outcome, latency_ms, at, test=False) -> Attempt:
    return Attempt.objects.create(
        delivery=delivery, outcome=outcome, latency_ms=latency_ms, started_at=at, test=test,
        method="POST", url="https://crm.example.com/leads",
    )  # fmt: skip


@pytest.mark.django_db
def test_batches_and_exports_of_the_window_are_counted(client, token, client_a, manager):
    delivery = make_file_delivery(client_a)
    now = timezone.now()
    for number, (status, seconds, size) in enumerate(
        [("sent", 3, 50_000), ("sent", 120, 5_000_000), ("failed", 10, None)], start=1
    ):
        Batch.objects.create(
            delivery=delivery, number=number, status=status, run_at=now, bytes=size,
            started_at=now - dt.timedelta(seconds=seconds), finished_at=now,
        )  # fmt: skip
    ExportAudit.objects.create(user=manager, client=client_a, format="csv", rows=120)
    ExportAudit.objects.create(user=manager, client=client_a, format="csv", rows=30)

    samples = scrape(client)

    assert one(samples, "rokt_batches_recent", status="sent") == 2
    assert one(samples, "rokt_batches_recent", status="failed") == 1
    durations = samples["rokt_batch_duration_seconds_recent_bucket"]
    assert durations[frozenset({("le", "5.0")})] == 1
    assert durations[frozenset({("le", "300.0")})] == 2
    sizes = samples["rokt_batch_bytes_recent_bucket"]
    assert sizes[frozenset({("le", "100000.0")})] == 1
    assert sizes[frozenset({("le", "+Inf")})] == 2
    assert one(samples, "rokt_exports_recent", format="csv", status="streamed") == 2
    assert one(samples, "rokt_export_rows_recent", format="csv", status="streamed") == 150


@pytest.mark.django_db
def test_a_stale_worker_heartbeat_and_beats_tick_show_their_age(client, token):
    samples = scrape(client)
    # Nothing ever beat: no figure (the alert rules ask for its absence too).
    assert "rokt_worker_heartbeat_age_seconds" not in samples
    assert "rokt_beat_tick_age_seconds" not in samples

    WorkerHeartbeat.objects.create(
        hostname="w1@host", beat_at=timezone.now() - dt.timedelta(minutes=10)
    )
    beat_tick_enable()  # what beat does on beat_init
    try:
        before_task_publish.send(sender="housekeeping.heartbeat", body=(), headers={})
    finally:
        before_task_publish.disconnect(dispatch_uid="metrics.beat_tick")
    samples = scrape(client)

    assert 600 <= one(samples, "rokt_worker_heartbeat_age_seconds") < 660
    assert 0 <= one(samples, "rokt_beat_tick_age_seconds") < 10


@pytest.mark.django_db
def test_ingested_records_are_counted_by_outcome(client, token, client_a):
    before = scrape(client)
    first = referral_record(client_a)
    referrals_ingest(records=[first, referral_record(client_a)])
    referrals_ingest(records=[first, {"client": "nobody"}])  # a duplicate, an invalid record

    after = scrape(client)

    def added(name: str, **labels: str) -> float:
        return one(after, name, **labels) - one(before, name, **labels)

    assert added("rokt_ingest_records_total", result="created") == 2
    assert added("rokt_ingest_records_total", result="duplicate") == 1
    assert added("rokt_ingest_records_total", result="invalid") == 1
    assert added("rokt_ingest_request_seconds_count") == 2


# --- The example alert rules ------------------------------------------------------------------


def test_the_alert_rules_are_valid_yaml_in_prometheus_rule_file_shape():
    rules = yaml.safe_load(ALERTS.read_text())
    every = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in every}
    assert {"DeliveryFailing", "DeliveryBacklogGrowing", "DeliveryOldestPendingTooOld",
            "BeatStopped", "WorkerHeartbeatStale"} <= names  # fmt: skip
    for rule in every:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}


@pytest.mark.django_db
def test_the_alert_rules_name_only_metrics_that_exist(client, token, client_a):
    make_file_delivery(client_a)
    WorkerHeartbeat.objects.create(hostname="w1@host", beat_at=timezone.now())
    from metrics.beat import beat_tick_record

    beat_tick_record()
    exposed = {name for name in scrape(client)}

    named = set(re.findall(r"\brokt_[a-z_]+", ALERTS.read_text()))
    assert named and named <= exposed, named - exposed


# --- Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,office", "'office' is not a network"),
        ("METRICS_WINDOW_SECONDS", "10", "METRICS_WINDOW_SECONDS=10 is below its minimum of 60"),
    ],
)
def test_a_bad_metrics_setting_fails_at_start_naming_the_variable(name, value, message, tmp_path):
    from tests.test_settings_from_env import _check

    result = _check({name: value}, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


# --- Cost -------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_scrape_reads_what_is_owed_not_the_whole_ledger(client, token, client_a):
    """The backlog is counted through ``item_owed_age``: a ledger of delivered items is not
    read (bench/metrics.py measures it at 10M items)."""
    from django.db import connection

    from tests.test_statement_plans import _reads

    deliveries = [make_file_delivery(client_a) for _ in range(60)]
    referrals_ingest(records=[referral_record(client_a) for _ in range(50)])  # 3,000 items
    owed = DeliveryItem.objects.filter(delivery=deliveries[0]).order_by("id")[:5]
    DeliveryItem.objects.exclude(pk__in=list(owed.values_list("pk", flat=True))).update(
        status="delivered"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_deliveryitem")

    samples: dict = {}
    read = _reads(lambda: samples.update(scrape(client)))

    labels = {"delivery": str(deliveries[0].pk), "client": "alpha", "kind": "sftp"}
    assert one(samples, "rokt_delivery_pending_items", **labels) == 5
    assert read <= 5  # at most the owed items' rows (before VACUUM marks their pages)


# --- Several web processes ----------------------------------------------------------------------

_INGEST_IN_A_PROCESS = """
import django
django.setup()
from metrics.ingest import ingest_observe
ingest_observe(["created", "created", "invalid"], 0.02)
"""
_SCRAPE_IN_A_PROCESS = """
import django
django.setup()
from prometheus_client import generate_latest
from metrics.ingest import process_registry
print(generate_latest(process_registry()).decode())
"""


def test_with_a_multiprocess_folder_any_process_answers_for_all_of_the_host(tmp_path):
    """Under gunicorn, the process that answers the scrape sums what every worker process
    counted (PROMETHEUS_MULTIPROC_DIR)."""
    import os
    import subprocess
    import sys

    from tests.processes import ROOT

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "rokt_platform.settings"}  # fmt: skip

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(_INGEST_IN_A_PROCESS)
    run(_INGEST_IN_A_PROCESS)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(run(_SCRAPE_IN_A_PROCESS))
        for sample in family.samples
    }

    assert samples[("rokt_ingest_records_total", (("result", "created"),))] == 4
    assert samples[("rokt_ingest_records_total", (("result", "invalid"),))] == 2
    assert samples[("rokt_ingest_request_seconds_count", ())] == 2
