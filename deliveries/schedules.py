"""When a file delivery runs: every N minutes, hourly, daily, weekly or cron, in the client's
time zone.

Every kind but "every N minutes" becomes a cron expression evaluated by ``cronsim`` in the
client's zone, which treats DST as Debian's cron does: a daily time that does not exist on the
day clocks go forward runs at the first minute after the gap, a daily time that happens twice
when they go back runs once, and hourly (or more frequent) schedules follow real time. "Every
N minutes" counts real minutes from the epoch, so no clock change moves it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class ScheduleError(ValueError):
    """A schedule that cannot run; the message names the field and the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def schedule_check(delivery) -> None:
    """Raise ``ScheduleError`` unless ``delivery``'s schedule is complete and valid."""
    kind = delivery.schedule_kind
    if kind == "interval":
        every = delivery.schedule_every_minutes
        if not every or every < 1:
            raise ScheduleError("schedule_every_minutes", "Give the number of minutes (1 or more).")
        return
    if kind == "hourly":
        if not 0 <= delivery.schedule_minute <= 59:
            raise ScheduleError("schedule_minute", "The minute past the hour must be 0 to 59.")
        return
    if kind in ("daily", "weekly") and delivery.schedule_time is None:
        raise ScheduleError("schedule_time", "Give the time of day the file is sent.")
    if kind == "weekly" and delivery.schedule_weekday not in range(7):
        raise ScheduleError("schedule_weekday", "Choose the day of the week (0 = Monday).")
    if kind == "cron":
        expression = delivery.schedule_cron.strip()
        if not expression:
            raise ScheduleError("schedule_cron", "Give a cron expression, e.g. '0 6 * * 1-5'.")
        try:
            CronSim(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        except CronSimError as exc:
            raise ScheduleError("schedule_cron", f"Not a valid cron expression: {exc}") from None


def cron_expression(delivery) -> str:
    """The schedule as a cron expression (not for "every N minutes")."""
    kind = delivery.schedule_kind
    if kind == "hourly":
        return f"{delivery.schedule_minute} * * * *"
    if kind == "daily":
        at = delivery.schedule_time
        return f"{at.minute} {at.hour} * * *"
    if kind == "weekly":
        at = delivery.schedule_time
        # cron counts days from Sunday = 0; the model from Monday = 0, like Python.
        return f"{at.minute} {at.hour} * * {(delivery.schedule_weekday + 1) % 7}"
    if kind == "cron":
        return delivery.schedule_cron.strip()
    raise ValueError(f"no cron expression for schedule kind {kind!r}")


def next_run_after(delivery, after: dt.datetime) -> dt.datetime:
    """The first slot strictly after ``after`` (aware), as an aware UTC datetime."""
    schedule_check(delivery)
    if delivery.schedule_kind == "interval":
        step = delivery.schedule_every_minutes * 60
        seconds = int(after.timestamp()) // step * step + step
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    zone = ZoneInfo(delivery.client.time_zone)
    local = after.astimezone(zone)
    # cronsim starts from the given minute inclusive; a slot equal to ``after`` has run.
    slots = CronSim(cron_expression(delivery), local)
    for slot in slots:
        if slot > after:
            return slot.astimezone(dt.UTC)
    raise ScheduleError("schedule_cron", "The schedule never runs.")  # pragma: no cover


def schedule_describe(delivery) -> str:
    kind = delivery.schedule_kind
    zone = delivery.client.time_zone
    try:
        schedule_check(delivery)
    except ScheduleError as exc:
        return f"invalid: {exc}"
    if kind == "interval":
        return f"every {delivery.schedule_every_minutes} min"
    if kind == "hourly":
        return f"hourly at :{delivery.schedule_minute:02d}"
    if kind == "daily":
        return f"daily at {delivery.schedule_time:%H:%M} {zone}"
    if kind == "weekly":
        day = WEEKDAYS[delivery.schedule_weekday]
        return f"{day}s at {delivery.schedule_time:%H:%M} {zone}"
    return f"cron '{delivery.schedule_cron.strip()}' {zone}"
