"""Schemathesis hooks for tests/test_api_fuzz.py (loaded by the CLI through
``SCHEMATHESIS_HOOKS``).

A generated request that the schema calls valid may still name things that do not exist: a
client slug, a referral id, a delivery id. The server rightly answers 400 or 404 to those,
which teaches nothing. These hooks make *positive* cases name what the fuzz world holds
(``FUZZ_FACTS``, written by the test), so that valid data reaches the code that stores it.
Negative cases are left exactly as generated. Schemathesis checks each mapped case against the
schema again, so a hook cannot turn an invalid request into one it calls valid.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zlib
from typing import Any

import schemathesis

FACTS: dict[str, Any] = json.loads(os.environ.get("FUZZ_FACTS", "{}"))


def _pick(options: list, seed: Any) -> Any:
    """One of ``options``, chosen by the generated value, so a run replays from its seed."""
    return options[zlib.crc32(repr(seed).encode()) % len(options)]


def _resource(path: str) -> str:
    """'/api/v1/deliveries/{id}/pause/' -> 'deliveries'."""
    return path.split("/")[3]


@schemathesis.hook
def map_case(context, case):
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    resource = _resource(case.path)
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = _existing_id(case, resource)
    if case.query:
        _name_what_exists(case.query)
        _order_range(case.query, "created_after", "created_before")
    if isinstance(case.body, dict):
        _name_what_exists(case.body)
        _order_range(case.body, "start", "end")
    elif isinstance(case.body, list):
        for record in case.body:
            if isinstance(record, dict):
                _name_what_exists(record)
    return case


def _existing_id(case, resource: str) -> Any:
    ids = FACTS["ids"].get(resource)
    generated = case.path_parameters["id"]
    return _pick(ids, generated) if ids else generated


def _name_what_exists(values: dict) -> None:
    """The caller's own client, and a referral of it where one is named."""
    if isinstance(values.get("client"), str):
        values["client"] = FACTS["client"]
    if "referral" in values and isinstance(values["referral"], int | str):
        referral = _pick(FACTS["ids"]["referrals"], values["referral"])
        values["referral"] = str(referral) if isinstance(values["referral"], str) else referral


def _order_range(values: dict, low: str, high: str) -> None:
    """A range is given earliest first and is not empty: the server refuses others, as its
    schema descriptions say (JSON Schema cannot compare two values)."""
    try:
        earliest = dt.datetime.fromisoformat(values[low])
        latest = dt.datetime.fromisoformat(values[high])
        if earliest > latest:
            values[low], values[high] = values[high], values[low]
        elif earliest == latest:  # an empty range, which the server refuses
            values[high] = (latest + dt.timedelta(seconds=1)).isoformat()
    except (KeyError, TypeError, ValueError, OverflowError):  # absent, or refused anyway
        return
