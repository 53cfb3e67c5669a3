"""Local times of UTC instants read as the database's text, cheaply.

The Python back end fetches date-times as the text the database holds (see
``customfields.fetch``): ``2026-03-30 10:33:53.12+00`` from PostgreSQL in UTC, ``2026-03-30
10:33:53.120000`` from SQLite. Parsing each into a datetime and converting it to the client's
zone cost more than everything else in a row; yet a zone's offset rarely changes within an hour,
so the work is done once per UTC hour: within a *regular* hour (one offset throughout, a whole
number of hours) the local time is the UTC text with its date and hour replaced. Any other
text (another shape, an hour with a transition, a zone half an hour off UTC) takes the exact
path: parse, convert, format.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable

from customfields.sources import iso_offset

# "YYYY-MM-DD HH": the UTC hour a text starts with.
HOUR = 13
MINUTE = 16
SECOND = 19
_HOUR_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}")
_ONE_HOUR = dt.timedelta(hours=1) - dt.timedelta(microseconds=1)
# Caches hold this many entries at most, then start again: memory stays flat, and rows come
# in time order, so the entries in use are the recent ones.
CACHE_SIZE = 4096


def bounded_store(cache: dict, key, value):
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


class ZoneClock:
    """UTC text -> local time in ``zone``. ``fits(text)`` says whether a text has the shape
    the fast path reads (the database's own, in UTC); ``parse`` reads any shape exactly."""

    def __init__(
        self,
        zone: zoneinfo.ZoneInfo,
        fits: Callable[[str], bool],
        parse: Callable[[str], dt.datetime],
    ) -> None:
        self.zone = zone
        self.fits = fits
        self.parse = parse
        # UTC hour text -> (local "YYYY-MM-DDTHH", offset text), or None for irregular hours.
        self._hours: dict[str, tuple[str, str] | None] = {}

    def local(self, text: str) -> dt.datetime:
        """The exact path: ``text`` as an aware datetime in the zone."""
        return self.parse(text).astimezone(self.zone)

    def regular_hour(self, text: str) -> tuple[str, str] | None:
        """(local date and hour, offset text) of the UTC hour ``text`` starts with, when the
        fast path may read it."""
        key = text[:HOUR]
        try:
            return self._hours[key]
        except KeyError:
            if not self.fits(text):
                return None  # a text of another shape: no verdict on its hour for the others
            return bounded_store(self._hours, key, self._hour(key))

    def _hour(self, key: str) -> tuple[str, str] | None:
        if not _HOUR_TEXT.fullmatch(key):
            return None
        try:
            start = dt.datetime.fromisoformat(key[:10] + "T" + key[11:] + ":00:00+00:00")
        except ValueError:
            return None
        first, last = start.astimezone(self.zone), (start + _ONE_HOUR).astimezone(self.zone)
        offset = first.utcoffset()
        if offset != last.utcoffset() or offset.total_seconds() % 3600:
            return None
        return first.isoformat()[:HOUR], iso_offset(offset)

    def iso(self, text: str | None) -> str:
        """ISO 8601 to the second with the offset, as ``sources.iso_datetime`` writes it."""
        if text is None:
            return ""
        try:
            local_hour, offset = self._hours[text[:HOUR]]  # TypeError: an irregular hour
            if self.fits(text):
                return local_hour + text[HOUR:SECOND] + offset
        except (KeyError, TypeError):
            if self.fits(text) and self.regular_hour(text) is not None:
                return self.iso(text)
        return self.local(text).isoformat(timespec="seconds")

    def memoized(
        self, render: Callable[[dt.datetime], str], digits: int | None
    ) -> Callable[[str | None], str]:
        """``render(local datetime)`` of a UTC text, remembered by the text's first ``digits``
        characters (``MINUTE``: the output changes at most once a minute), in regular hours
        only: there the local fields down to the minute follow from the UTC ones."""
        cache: dict[str, str] = {}

        def run(text: str | None) -> str:
            if text is None:
                return ""
            if digits is None or not self.fits(text):
                return render(self.local(text))
            key = text[:digits]
            try:
                return cache[key]
            except KeyError:
                result = render(self.local(text))
                if self.regular_hour(text) is not None:
                    bounded_store(cache, key, result)
                return result

        return run
