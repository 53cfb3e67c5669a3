"""What an HTTP answer means for a referral: delivered, rejected (kept, never retried) or
failed (retried), and whether the delivery itself must stop.

- delivered: an accepted status (2xx unless configured) and, if configured, a body match;
- rejected: the CRM refused this record: a 4xx other than 408/429, an accepted status whose
  body says no, or a status outside the accepted ones that is not an error;
- failed: no answer (network, timeout), 5xx, 408, 429 or a redirect (never followed):
  retried later, after ``Retry-After`` when the answer gives one;
- 410 Gone pauses the delivery, and so do a target the SSRF guard refuses and a request
  the delivery's settings cannot build or send (``configuration``): retrying cannot fix
  those, an account manager must.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from dataclasses import dataclass

import re2

from deliveries.configuration import pause_reason
from deliveries.setting_patterns import ACCEPTED_STATUSES

RETRY_AFTER_MAX = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    outcome: str  # delivered | rejected | failed
    reason: str = ""
    retry_after: float | None = None  # seconds, from the answer's Retry-After
    pause: str = ""  # why the whole delivery must stop, if it must


def accepted_status(spec: str, status: int) -> bool:
    for part in (p.strip().lower() for p in spec.split(",")):
        if not part:
            continue
        if part.endswith("xx") and part[0].isdigit():
            if status // 100 == int(part[0]):
                return True
        elif "-" in part:
            low, high = sorted(int(x) for x in part.split("-", 1))  # either way round
            if low <= status <= high:
                return True
        elif status == int(part):
            return True
    return False


def accepted_statuses_error(spec: str) -> str | None:
    """Why ``spec`` is no status list (``ACCEPTED_STATUSES``, the schema's pattern too)."""
    if ACCEPTED_STATUSES.fullmatch(spec):
        return None
    return (
        f"Not a status list: {spec!r}; write '2xx', or codes and ranges of codes from 100 to "
        "599 separated by commas: '200, 201' or '200-204'."
    )


def classify(delivery, response) -> Outcome:
    if response.status is None:
        if response.error_class == "ssrf_refused":
            return Outcome("failed", response.error, pause=f"target refused: {response.error}")
        if response.error_class == "configuration":
            return Outcome("failed", response.error, pause=pause_reason(response.error))
        return Outcome("failed", f"{response.error_class}: {response.error}")
    status = response.status
    if status == 410:
        return Outcome("failed", "410 Gone", pause="the endpoint answered 410 Gone")
    if 300 <= status < 400:
        location = _header(response.headers, "location")
        return Outcome("failed", f"{status} redirect to {location or '?'} not followed")
    if status in (408, 429) or status >= 500:
        return Outcome("failed", f"HTTP {status}", retry_after=_retry_after(response.headers))
    if accepted_status(delivery.accepted_statuses, status):
        problem = _body_mismatch(delivery, response.body)
        if problem:
            return Outcome("rejected", problem)
        return Outcome("delivered")
    return Outcome("rejected", f"HTTP {status}: {_excerpt(response.body)}")


def _body_mismatch(delivery, body: bytes) -> str:
    kind = delivery.success_match
    if kind == "none":
        return ""
    text = body.decode("utf-8", errors="replace")
    wanted = delivery.success_match_value
    if kind == "contains":
        return "" if wanted in text else f"the answer does not contain {wanted!r}"
    if kind == "regex":
        return "" if re2.search(wanted, text) else f"the answer does not match /{wanted}/"
    try:
        value = json.loads(text)
        for key in _path(delivery.success_json_path):
            value = value[int(key)] if isinstance(value, list) else value[key]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"the answer has no {delivery.success_json_path}"
    found = value if isinstance(value, str) else json.dumps(value)
    if found != wanted:
        return f"{delivery.success_json_path} is {found!r}, not {wanted!r}"
    return ""


def _path(path: str) -> list[str]:
    """``$.result.status`` or ``result.status`` or ``items.0.id``."""
    return [part for part in path.strip().removeprefix("$").split(".") if part]


def json_path_error(path: str) -> str | None:
    return None if _path(path) else "Give a path such as $.result.status."


def regex_error(pattern: str) -> str | None:
    try:
        re2.compile(pattern)
    except re2.error as exc:
        return f"Not a valid regular expression: {exc}"
    return None


def _retry_after(headers) -> float | None:
    value = _header(headers, "retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value.strip()), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def _header(headers, name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


def _excerpt(body: bytes) -> str:
    return body[:300].decode("utf-8", errors="replace")
