import datetime as dt
from zoneinfo import ZoneInfo

from django.template import Context, Template
from django.utils import timezone


def _shown(value: dt.datetime) -> str:
    """As a template (every admin page) shows a date-time."""
    return Template("{{ value }}").render(Context({"value": value}))


def test_a_date_time_names_the_zone_it_is_shown_in():
    stored = dt.datetime(2026, 12, 3, 15, 12, tzinfo=dt.UTC)
    assert _shown(stored) == "Dec. 3, 2026, 3:12 p.m. UTC"  # staff: UTC
    with timezone.override(ZoneInfo("America/New_York")):  # a client user of that client
        assert _shown(stored) == "Dec. 3, 2026, 10:12 a.m. EST"
