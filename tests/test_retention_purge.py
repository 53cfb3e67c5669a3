"""The retention purge: what it removes, what it never removes (anything still owed), that it
records what it did, runs one at a time, and leaves every figure the platform shows as it was."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone

from dashboard.home import dashboard_context
from deliveries.models import Attempt, BatchEntry, DeliveryDay, DeliveryItem
from deliveries.selectors import api_health, deliveries_failing_for
from privacy.models import PurgeRun
from privacy.runs import retention_purge
from referrals.models import Client, Referral
from tests.retention_world import world_build
from tests.test_metrics import TOKEN, scrape

pytestmark = pytest.mark.django_db


@pytest.fixture
def retention(settings):
    settings.RETENTION_DELIVERED_ITEMS_DAYS = 3
    settings.RETENTION_BATCH_ENTRIES_DAYS = 3
    settings.RETENTION_ATTEMPTS_DAYS = 3
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return settings


@pytest.fixture
def world(retention, client_a, client_b):
    built = world_build(client_a, client_b)
    Client.objects.filter(pk=client_a.pk).update(retention_days=1)
    return built


def _later() -> dt.datetime:
    """The purge runs two days on: client A's referrals (kept a day) are past their time, the
    ledger's rows of five days ago past theirs (three days), today's attempts not."""
    return timezone.now() + dt.timedelta(days=2)


def test_it_removes_what_expired_and_nothing_still_owed(world, client_a):
    run = retention_purge(now=_later(), batch_size=2)  # pages of two: every page boundary
    assert run.status == PurgeRun.Status.DONE, run.error
    assert run.removed == {
        "referrals_anonymised_or_deleted": 5, "ledger_items": 9, "batch_entries": 6,
        "attempts": 11, "export_files": 0, "access_log": 0,
    }  # fmt: skip
    # The real-time items left: the one still retried, the one delivered today, B's owed one.
    left = set(DeliveryItem.objects.exclude(status="file").values_list("status", flat=True))
    assert DeliveryItem.objects.filter(pk=world.failing_item, status="failed").exists()
    assert left == {"failed", "delivered", "pending"}
    assert DeliveryItem.objects.filter(delivery=world.files, status="file").count() == 1
    assert not BatchEntry.objects.filter(batch=world.sent_batch).exists()
    assert BatchEntry.objects.filter(batch=world.unsent_batch).count() == 2
    # The retried item keeps its history; the attempts of today stay.
    assert Attempt.objects.filter(item_id=world.failing_item).count() == 2
    assert Attempt.objects.filter(started_at__gte=timezone.now() - dt.timedelta(days=1)).exists()
    anonymised = Referral.objects.filter(client=client_a, anonymised_at__isnull=False)
    assert sorted(anonymised.values_list("pk", flat=True)) == sorted(world.anonymisable)
    assert set(anonymised.values_list("email", flat=True)) == {""}
    assert not Referral.objects.filter(pk__in=world.owed, anonymised_at__isnull=False).exists()
    assert not Referral.objects.exclude(client=client_a).filter(anonymised_at__isnull=False)
    # A second run finds nothing more.
    again = retention_purge(now=_later(), batch_size=2)
    assert again.total == 0 and again.status == PurgeRun.Status.DONE


def _figures(manager, user_a, client, world) -> dict:
    cache.clear()
    request = RequestFactory().get("/admin/")
    figures = {}
    for name, user in (("manager", manager), ("client user", user_a)):
        request.user = user
        context = dashboard_context(request)
        figures[name] = {
            "chart": [(b["day"], b["count"], b["sent"]) for b in context["chart"]["bars"]],
            "deliveries": [
                (d.pk, d.pending, d.last_batch_number, d.last_batch_status, d.failing_since)
                for d in context["deliveries"]
            ],
            "summaries": [
                (
                    s["summary"].client.pk,
                    s["summary"].last_24h,
                    s["summary"].last_7d,
                    s["summary"].last_referral_at,
                )
                for s in context.get("summaries", [])
            ],
            "batches": [(b.pk, b.rows, b.status) for b in context.get("recent_batches", [])],
        }
    health = api_health(world.api)
    health.pop("last_test")
    figures["api health"] = health
    figures["failing banner"] = [d.pk for d in deliveries_failing_for(manager)]
    samples = scrape(client)
    for name in ("rokt_delivery_pending_items", "rokt_delivery_attempts_recent",
                 "rokt_batches_recent", "rokt_delivery_send_seconds_recent_bucket",
                 "rokt_delivery_failing", "rokt_delivery_paused"):  # fmt: skip
        figures[name] = samples.get(name)
    return figures


@pytest.mark.parametrize("action", ["anonymise", "delete"])
def test_every_figure_shown_is_the_same_after_a_purge(world, client, manager, user_a, action):
    Client.objects.filter(retention_days__isnull=False).update(retention_action=action)
    before = _figures(manager, user_a, client, world)
    assert before["client user"]["chart"][-6][2] > 0  # what was delivered five days ago shows
    run = retention_purge(now=_later())
    assert run.total > 0
    assert DeliveryDay.objects.exists()
    after = _figures(manager, user_a, client, world)
    if action == "delete":
        # The purge runs two days on, the figures are read now: a deletion took referrals
        # delivered within the windows that end now (24 h health, /metrics' five minutes),
        # which count live rows only. In real time a referral is deleted a day or more after
        # it was stored, so only one delivered that late (a replay) leaves those windows.
        for name in ("api health", "rokt_delivery_attempts_recent",
                     "rokt_delivery_send_seconds_recent_bucket"):  # fmt: skip
            before.pop(name), after.pop(name)
    assert after == before


def test_zero_keeps_everything_forever(world, retention, client_a):
    retention.RETENTION_DELIVERED_ITEMS_DAYS = 0
    retention.RETENTION_BATCH_ENTRIES_DAYS = 0
    retention.RETENTION_ATTEMPTS_DAYS = 0
    Client.objects.filter(pk=client_a.pk).update(retention_days=None)
    counts = [m.objects.count() for m in (DeliveryItem, BatchEntry, Attempt)]
    run = retention_purge(now=_later() + dt.timedelta(days=3650))
    assert run.total == 0
    assert [m.objects.count() for m in (DeliveryItem, BatchEntry, Attempt)] == counts
    assert not Referral.objects.filter(anonymised_at__isnull=False).exists()


def test_a_client_asking_for_deletion_loses_what_expired_and_nothing_owed(world, client_a):
    Client.objects.filter(pk=client_a.pk).update(retention_action="delete")
    run = retention_purge(now=_later(), batch_size=2)
    assert run.status == PurgeRun.Status.DONE, run.error
    assert run.removed["referrals_anonymised_or_deleted"] == 5
    left = Referral.objects.filter(client=client_a)
    assert not left.filter(pk__in=world.anonymisable).exists()
    assert set(world.owed) <= set(left.values_list("pk", flat=True))
    assert left.count() == 9 - 5
    assert not DeliveryItem.objects.filter(referral_id__in=world.anonymisable).exists()
    assert not Attempt.objects.filter(referral_id__in=world.anonymisable).exists()
    assert not BatchEntry.objects.filter(referral_id__in=world.anonymisable).exists()


@contextmanager
def _purge_held_elsewhere(tmp_path, settings):
    """The purge's claim, held as another process would hold it."""
    if connection.vendor == "postgresql":
        import psycopg

        from tests.processes import child_database_url

        with psycopg.connect(child_database_url(), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s, %s)", [0x50524956, 1])
            yield
            other.execute("SELECT pg_advisory_unlock(%s, %s)", [0x50524956, 1])
        return
    import fcntl

    settings.VAR_DIR = tmp_path
    (tmp_path / "claims").mkdir()
    with (tmp_path / "claims" / "retention-purge.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def test_only_one_purge_runs_at_a_time(world, tmp_path, settings):
    with _purge_held_elsewhere(tmp_path, settings):
        assert retention_purge(now=_later()) is None
        assert not PurgeRun.objects.exists()
    assert retention_purge(now=_later()).status == PurgeRun.Status.DONE


def test_account_managers_see_the_runs_in_the_admin_and_client_users_do_not(
    world, client, manager, user_a
):
    run = retention_purge(now=_later())
    client.force_login(manager)
    page = client.get("/admin/privacy/purgerun/").content.decode()
    assert "Purge runs" in page
    detail = client.get(f"/admin/privacy/purgerun/{run.pk}/change/").content.decode()
    assert "ledger items: 9" in detail and "batch entries: 6" in detail
    client.force_login(user_a)
    assert client.get("/admin/privacy/purgerun/").status_code == 403
    assert client.get(f"/admin/privacy/purgerun/{run.pk}/change/").status_code == 403


def test_staff_set_a_clients_retention_and_its_users_only_read_it(client, manager, user_a,
                                                                  client_a):  # fmt: skip
    client.force_login(manager)
    page = client.get(f"/admin/referrals/client/{client_a.pk}/change/").content.decode()
    assert 'name="retention_days"' in page and 'name="retention_action"' in page
    client.force_login(user_a)
    page = client.get(f"/admin/referrals/client/{client_a.pk}/change/").content.decode()
    assert "Keep referrals for (days)" in page and 'name="retention_days"' not in page


def test_a_backfill_after_a_purge_owes_again_nothing_that_was_delivered(world):
    from django.db import transaction

    from deliveries.ledger import ledger_backfill
    from deliveries.models import Delivery

    retention_purge(now=_later())
    before = sorted(DeliveryItem.objects.values_list("delivery_id", "referral_id", "status"))
    for delivery in (world.api, world.files):  # what a save does: backfill from the start on
        with transaction.atomic():
            ledger_backfill(Delivery.objects.select_for_update().get(pk=delivery.pk))
    after = sorted(DeliveryItem.objects.values_list("delivery_id", "referral_id", "status"))
    assert after == before
