"""Schedules run in the client's time zone, right across DST; missed slots run once."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from deliveries.dispatch import delivery_schedule_reset, file_deliveries_due
from deliveries.models import Delivery
from deliveries.schedules import ScheduleError, next_run_after, schedule_check
from referrals.models import Client

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def delivery(zone: str = "Europe/London", **schedule) -> Delivery:
    """An unsaved delivery: schedules need only its fields and its client's zone."""
    return Delivery(client=Client(slug="x", time_zone=zone), kind="sftp", **schedule)


def runs(d: Delivery, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    slots, at = [], start
    while (at := next_run_after(d, at)) < end:
        slots.append(at)
    return slots


def local(slots, zone) -> list[str]:
    return [s.astimezone(zone).strftime("%m-%d %H:%M %Z") for s in slots]


def test_daily_across_the_spring_gap_runs_once_a_day_after_the_gap():
    d = delivery(schedule_kind="daily", schedule_time=dt.time(1, 30))
    slots = runs(
        d, dt.datetime(2026, 3, 27, 12, tzinfo=LONDON), dt.datetime(2026, 3, 31, tzinfo=LONDON)
    )
    # 01:30 does not exist on 29 March in London: it runs at the first minute after the gap.
    assert local(slots, LONDON) == [
        "03-28 01:30 GMT", "03-29 02:00 BST", "03-30 01:30 BST",
    ]  # fmt: skip


def test_daily_across_the_autumn_repeat_runs_once():
    d = delivery(schedule_kind="daily", schedule_time=dt.time(1, 30))
    slots = runs(
        d, dt.datetime(2026, 10, 24, 12, tzinfo=LONDON), dt.datetime(2026, 10, 27, tzinfo=LONDON)
    )
    # 01:30 happens twice on 25 October: one run, not two.
    assert local(slots, LONDON) == ["10-25 01:30 BST", "10-26 01:30 GMT"]


def test_hourly_follows_real_hours_on_a_25_hour_day():
    d = delivery(schedule_kind="hourly", schedule_minute=15)
    day = runs(
        d, dt.datetime(2026, 10, 25, tzinfo=LONDON), dt.datetime(2026, 10, 26, tzinfo=LONDON)
    )
    assert len(day) == 25
    assert len(set(day)) == 25
    assert all(s.astimezone(LONDON).minute == 15 for s in day)


def test_weekly_keeps_local_time_across_dst_in_new_york():
    d = delivery(
        "America/New_York", schedule_kind="weekly", schedule_time=dt.time(9, 0), schedule_weekday=0
    )
    slots = runs(
        d, dt.datetime(2026, 2, 25, tzinfo=NEW_YORK), dt.datetime(2026, 3, 20, tzinfo=NEW_YORK)
    )
    assert local(slots, NEW_YORK) == ["03-02 09:00 EST", "03-09 09:00 EDT", "03-16 09:00 EDT"]
    assert [s.hour for s in slots] == [14, 13, 13]  # UTC moves; the client's clock does not


def test_every_n_minutes_counts_real_minutes_on_a_23_hour_day():
    d = delivery(schedule_kind="interval", schedule_every_minutes=15)
    day = runs(
        d, dt.datetime(2026, 3, 28, 23, 59, tzinfo=LONDON), dt.datetime(2026, 3, 30, tzinfo=LONDON)
    )
    assert len(day) == 23 * 4
    assert all((b - a) == dt.timedelta(minutes=15) for a, b in itertools.pairwise(day))


def test_cron_in_the_clients_zone():
    d = delivery("America/New_York", schedule_kind="cron", schedule_cron="0 6 * * 1-5")
    slots = runs(
        d, dt.datetime(2026, 11, 27, tzinfo=NEW_YORK), dt.datetime(2026, 12, 3, tzinfo=NEW_YORK)
    )
    assert local(slots, NEW_YORK) == [
        "11-27 06:00 EST", "11-30 06:00 EST", "12-01 06:00 EST", "12-02 06:00 EST",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ({"schedule_kind": "interval"}, "schedule_every_minutes", "number of minutes"),
        ({"schedule_kind": "daily"}, "schedule_time", "time of day"),
        (
            {"schedule_kind": "weekly", "schedule_time": dt.time(6)},
            "schedule_weekday",
            "day of the week",
        ),
        ({"schedule_kind": "hourly", "schedule_minute": 60}, "schedule_minute", "0 to 59"),
        (
            {"schedule_kind": "cron", "schedule_cron": "61 * * * *"},
            "schedule_cron",
            "Not a valid cron",
        ),
        ({"schedule_kind": "cron", "schedule_cron": ""}, "schedule_cron", "Give a cron"),
    ],
)
def test_bad_schedules_are_refused_on_the_field(schedule, field, message):
    with pytest.raises(ScheduleError, match=message) as caught:
        schedule_check(delivery(**schedule))
    assert caught.value.field == field


@pytest.mark.django_db
def test_missed_slots_run_once_on_catch_up_and_two_ticks_take_a_slot_once(client_a):
    from tests.factories import make_file_delivery

    d = make_file_delivery(client_a, schedule_kind="hourly", schedule_minute=0)
    start = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)
    delivery_schedule_reset(d, now=start)
    d.refresh_from_db()
    assert d.next_run_at == dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    assert file_deliveries_due(now=start) == []
    # Beat was down from 08:30 to 13:20: five slots were missed; one run catches up.
    back = dt.datetime(2026, 11, 27, 13, 20, tzinfo=dt.UTC)
    assert file_deliveries_due(now=back) == [d.pk]
    assert file_deliveries_due(now=back) == []  # a second tick (or beat) at the same moment
    d.refresh_from_db()
    assert d.next_run_at == dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)
    assert file_deliveries_due(now=d.next_run_at) == [d.pk]


@pytest.mark.django_db
def test_paused_and_inactive_deliveries_are_never_due(client_a):
    from django.utils import timezone

    from tests.factories import make_file_delivery

    past = timezone.now() - dt.timedelta(hours=1)
    make_file_delivery(client_a, next_run_at=past, paused_at=past, paused_reason="x")
    make_file_delivery(client_a, next_run_at=past, active=False)
    assert file_deliveries_due() == []
