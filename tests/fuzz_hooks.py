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
def before_call(context, case, kwargs):
    """Just before sending, after a stateful step has taken values from earlier answers
    (which ``map_case`` would run before). Schemathesis then checks the case again."""
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _positive_case_completed(case)


def _positive_case_completed(case) -> None:
    resource = _resource(case.path)
    # A stateful step's id comes from an earlier answer (what a POST made): kept.
    if "id" in (case.path_parameters or {}) and case.meta.phase.name != "stateful":
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
    if case.path in (_DELIVERIES, _DELIVERY) and isinstance(case.body, dict):
        _delivery_settings_complete(case)
    if resource == "custom-fields" and isinstance(case.body, dict):
        _custom_field_refers_to_what_exists(case.body)
        if isinstance(case.body.get("sample"), dict):
            _record_storable(case.body["sample"])
    if case.path == _ERASURES and case.method == "POST" and isinstance(case.body, dict):
        _erasure_of_someone(case.body)
    if case.path == "/api/v1/referrals/" and case.method == "POST":
        for record in case.body if isinstance(case.body, list) else [case.body]:
            if isinstance(record, dict):
                _record_storable(record)


_ERASURES = "/api/v1/erasures/"


def _erasure_of_someone(body: dict) -> None:
    """Half the erasures name the person the fuzz world holds for them alone (the first one
    erases their referral, later ones find nothing); the rest keep the generated email or
    external id, which names nobody, so the run's other data stays."""
    person = FACTS["erasure"]
    for name in ("email", "external_id"):
        if isinstance(body.get(name), str) and _pick([True, False], body[name]):
            body[name] = person[name]


def _existing_id(case, resource: str) -> Any:
    ids = FACTS["ids"].get(resource)
    generated = case.path_parameters["id"]
    if resource == "deliveries" and isinstance(case.body, dict) and "kind" in case.body:
        # A PUT or PATCH of a delivery of the body's kind (changing the kind is a 409).
        ids = [d["id"] for d in FACTS["deliveries"] if d["kind"] == case.body["kind"]] or ids
    return _pick(ids, generated) if ids else generated


_DELIVERIES, _DELIVERY = "/api/v1/deliveries/", "/api/v1/deliveries/{id}/"
# What each choice needs beside it: rules the schema states in its descriptions (a generator
# cannot be told that a PATCH switching ``auth_kind`` must also bring its secret).
_AUTH_NEEDS = {
    "basic": {"auth_username": "fuzz", "auth_secret": "fuzz-secret"},
    "bearer": {"auth_secret": "fuzz-secret"},
    "api_key_header": {"auth_key_name": "X-Api-Key", "auth_secret": "fuzz-secret"},
    "api_key_query": {"auth_key_name": "api_key", "auth_secret": "fuzz-secret"},
}
_SCHEDULE_NEEDS = {
    "interval": {"schedule_every_minutes": 60},
    "hourly": {"schedule_minute": 0},
    "daily": {"schedule_time": "06:00"},
    "weekly": {"schedule_weekday": 0, "schedule_time": "06:00"},
    "cron": {"schedule_cron": "0 6 * * *"},
}
_MATCH_NEEDS = {
    "contains": {"success_match_value": "ok"},
    "regex": {"success_match_value": "ok"},
    "json_path": {"success_match_value": "ok", "success_json_path": "$.status"},
}
_COLUMNS = [{"source": "external_id", "output": "id"}, {"source": "email", "output": "email"}]


def _delivery_settings_complete(case) -> None:
    """A delivery body that the save can take: the rules deliveries/api/schema.py describes
    but cannot encode (what exists, what each choice brings with it)."""
    body = case.body
    delivery = _delivery_of(case)
    kind = body.get("kind") or (delivery or {}).get("kind")
    if kind in FACTS["delivery_settings"]:
        # Another kind's setting is no part of this kind's body: the server checks its type.
        own = set(FACTS["delivery_settings"][kind])
        others = set().union(*FACTS["delivery_settings"].values()) - own
        for name in others & set(body):
            del body[name]
    if delivery is not None and "client" in body:
        body["client"] = delivery["client"]  # a delivery stays with its client (else 409)
    client = body.get("client") or (delivery or {}).get("client")
    if client not in FACTS["campaigns"]:
        client = FACTS["client"]
    if "campaigns" in body or body.get("all_campaigns") is False:
        # Real campaigns suit a stored "all campaigns" as well as a stored choice.
        body["campaigns"] = [] if body.get("all_campaigns") else FACTS["campaigns"][client]
    if case.method == "PATCH":
        _patch_self_contained(body, kind)
    if "columns" in body:
        body["columns"] = _COLUMNS
    if "body_template" in body or "body_format" in body:
        body["body_template"] = ""  # the columns' own shape in the chosen format
    if isinstance(body.get("headers"), dict):
        reserved = set(FACTS["reserved_headers"])
        body["headers"] = {k: v for k, v in body["headers"].items() if k.lower() not in reserved}
    if kind == "api":
        _http_method_matches_format(body)
        for choice, needs in (("auth_kind", _AUTH_NEEDS), ("success_match", _MATCH_NEEDS)):
            body.update(needs.get(body.get(choice), {}))
    elif kind in ("sftp", "ftps"):
        body.pop("private_key", None)  # a generated one never parses: log in by password
        body.pop("passphrase", None)
        if not body.get("password"):  # an SFTP login needs one (no key), FTPS always
            body["password"] = "fuzz-password"
        body.update(_SCHEDULE_NEEDS.get(body.get("schedule_kind"), {}))


def _patch_self_contained(body: dict, kind: str | None) -> None:
    """A PATCH names each choice it depends on, so that it is valid whatever earlier cases
    of the run stored (a value that the stored choice needs may otherwise come blank)."""
    if kind == "api":
        body.setdefault("auth_kind", "none")
        body.setdefault("success_match", "none")
        if "http_method" not in body and "body_format" not in body:
            body.update(http_method="POST", body_format="json")
    elif kind in ("sftp", "ftps"):
        body.setdefault("schedule_kind", "daily")


def _delivery_of(case) -> dict | None:
    if case.path != _DELIVERY:
        return None
    return next((d for d in FACTS["deliveries"] if d["id"] == case.path_parameters["id"]), None)


def _http_method_matches_format(body: dict) -> None:
    """GET sends a query string; POST and PUT send a body."""
    if body.get("http_method") == "GET":
        body["body_format"] = "query"
    elif "http_method" in body or body.get("body_format") == "query":
        if body.get("http_method", "GET") == "GET":
            body["http_method"] = "POST"
        if body.get("body_format", "query") == "query":
            body["body_format"] = "json"


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


def _custom_field_refers_to_what_exists(body: dict) -> None:
    """A source, placeholder or regex the save can resolve: a standard field or an extra
    attribute (a generated name is another custom field only by chance, or the field itself),
    and a pattern the portable regex engine compiles."""
    source = body.get("source")
    standard = isinstance(source, str) and source.lower() in FACTS["standard_fields"]
    if isinstance(source, str) and not source.startswith("extra.") and not standard:
        body["source"] = "email"
    if isinstance(body.get("template"), str):
        body["template"] = "{{{first_name}}} {{{last_name}}}"
    for rule in body.get("rules") or []:
        if isinstance(rule, dict) and rule.get("match") == "regex":
            rule["value"] = "^M"


def _record_storable(record: dict) -> None:
    """A referral the database can hold: a price to 4 places, an opt-in time within range in
    UTC (the schema's date-time allows year 9999 at UTC-12)."""
    if isinstance(record.get("bid_price"), float):
        record["bid_price"] = round(record["bid_price"], 2)
    try:
        opted_in = dt.datetime.fromisoformat(record["opted_in_at"])
        opted_in.astimezone(dt.UTC)
        if not 1900 <= opted_in.year <= 9000:
            raise ValueError
    except (KeyError, TypeError):
        return
    except (ValueError, OverflowError):
        record["opted_in_at"] = "2026-01-01T00:00:00Z"
