"""The delivery bodies of the API schema: one shape per kind, as a client must build them.

drf-spectacular sees one serializer holding every kind's settings. This postprocessing hook
publishes ``DeliveryCreate`` (POST), ``DeliveryReplace`` (PUT) and ``DeliveryPatch`` (PATCH)
as a ``oneOf`` by ``kind``: each kind's settings, which are required, their patterns (from
``deliveries.setting_patterns``, the very ones the save checks) and ranges. Where a setting
decides what else is required (``auth_kind`` of a real-time delivery, ``schedule_kind`` of a
file delivery), the kind is itself a ``oneOf`` of plain objects, one per choice. Rules no
plain object can say are in the descriptions (each channel's ``api_rules``).
"""

from __future__ import annotations

import copy

from deliveries.api.serializers import REPLAY_CHOICES
from deliveries.channels import CHANNELS, WRITABLE_SECRETS
from deliveries.setting_patterns import (
    ACCEPTED_STATUSES,
    BASIC_PASSWORD,
    BASIC_USERNAME,
    CERTIFICATE_FINGERPRINT,
    CLOCK,
    FILE_NAME_TEMPLATE,
    HEADER_NAME,
    HEADER_VALUE,
    HOST,
    HOST_KEY,
    NON_BLANK,
    PARAM_NAME,
    RESERVED_HEADERS,
    SIGNING_SECRET,
    URL,
    VISIBLE_ASCII,
    anchored,
)
from referrals.api.query import SLUG_PATTERN

COMMON = ("client", "name", "kind", "active", "all_campaigns", "campaigns", "columns", "starts_at")
# Each kind's settings and what a creation must give: its channel's (deliveries/channels/).
SETTINGS = {kind: channel.settings for kind, channel in CHANNELS.items()}
REQUIRED = {kind: channel.required for kind, channel in CHANNELS.items()}
SECRETS = WRITABLE_SECRETS


def _text(pattern, **more) -> dict:
    return {"type": "string", "pattern": anchored(pattern), **more}


def _number(low: float, high: float, kind: str = "integer", **more) -> dict:
    return {"type": kind, "minimum": low, "maximum": high, **more}


def _custom_header() -> dict:
    # The reserved names are said, not patterned: a lookahead slows generators down badly.
    reserved = ", ".join(RESERVED_HEADERS)
    return _text(HEADER_NAME, description=f"A header name, not one the platform sets: {reserved}.")


INT_MAX = 2147483647
PAIRS = {
    "columns": (
        "source",
        "output",
        "Output names are unique (whatever their case); a source "
        "is a standard field, extra.<key> or one of the client's custom fields.",
    ),
    "headers": ("name", "value", "Sent with every request."),
}
CONSTRAINTS = {
    "client": {
        "type": "string",
        "pattern": SLUG_PATTERN,
        "maxLength": 100,
        "description": "The client's slug.",
    },
    "name": _text(NON_BLANK, maxLength=100),
    "campaigns": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "description": "With all_campaigns false: at least one of the client's own campaigns.",
    },
    "url": _text(URL, maxLength=2000, description="https://crm.example.com/leads"),
    "headers": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "value"],
            "properties": {"name": _custom_header(), "value": _text(HEADER_VALUE)},
        },
    },
    "columns": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["source", "output"],
            "properties": {"source": {"type": "string"}, "output": _text(NON_BLANK)},
        },
    },
    "connect_timeout": _number(0.5, 60, "number"),
    "total_timeout": _number(1, 300, "number"),
    "max_in_flight": _number(1, 200),
    "pause_after_minutes": _number(1, INT_MAX),
    "accepted_statuses": _text(
        ACCEPTED_STATUSES,
        maxLength=200,
        description="'2xx', or "
        "codes and ranges of codes, by commas: '200, 201' or '200-204' "
        "(a range may be given either way round).",
    ),
    "signing_secret": {"type": "string", "pattern": f"^(?:{SIGNING_SECRET.pattern})?$"},
    "host": _text(HOST, maxLength=255),
    "port": _number(1, 65535, nullable=True),
    "username": _text(NON_BLANK, maxLength=255),
    "host_key": _text(HOST_KEY),
    "certificate_fingerprint": _text(CERTIFICATE_FINGERPRINT, maxLength=120),
    "file_name_template": _text(FILE_NAME_TEMPLATE, maxLength=255),
    "max_rows_per_file": _number(1, INT_MAX, nullable=True),
    "schedule_minute": _number(0, 32767),
    "schedule_weekday": _number(0, 32767, nullable=True),
    "schedule_every_minutes": _number(1, INT_MAX, nullable=True),
}

# The choices that decide what else a body needs, by the setting that holds them.
AUTH = {  # auth_kind: its settings; the first is the default (auth_kind may be omitted)
    "none": {},
    "basic": {"auth_username": _text(BASIC_USERNAME), "auth_secret": _text(BASIC_PASSWORD)},
    "bearer": {"auth_secret": _text(VISIBLE_ASCII)},
    "api_key_header": {
        "auth_secret": _text(VISIBLE_ASCII),
        "auth_key_name": _custom_header(),
    },
    "api_key_query": {
        "auth_secret": {"type": "string", "minLength": 1},
        "auth_key_name": _text(PARAM_NAME),
    },
}
_CLOCK = _text(CLOCK, example="06:00")
SCHEDULE = {  # schedule_kind: its settings; daily is the default
    "daily": {"schedule_time": _CLOCK},
    "interval": {"schedule_every_minutes": _number(1, INT_MAX)},
    "hourly": {"schedule_minute": _number(0, 59)},
    "weekly": {"schedule_time": _CLOCK, "schedule_weekday": _number(0, 6)},
    "cron": {"schedule_cron": _text(NON_BLANK, maxLength=120)},
}
OPTIONAL_BY_CHOICE = {"schedule_minute"}  # hourly: defaults to 0
# The settings whose value decides what else a body needs (a channel names its own).
CHOICES = {"auth_kind": AUTH, "schedule_kind": SCHEDULE}


def delivery_bodies(result, generator, request, public):
    """Replace the generated delivery bodies with one shape per kind."""
    schemas = result["components"]["schemas"]
    if "Delivery" not in schemas:
        return result
    settings = _writable(schemas["Delivery"]["properties"])
    for body in ("Create", "Replace", "Patch"):
        branches = {kind: _kind_schema(schemas, settings, kind, body) for kind in SETTINGS}
        schemas[f"Delivery{body}"] = {
            "oneOf": [{"$ref": ref} for ref in branches.values()],
            "discriminator": {"propertyName": "kind", "mapping": branches},
            "description": _DESCRIPTIONS[body],
        }
    saved = copy.deepcopy(schemas["Delivery"])
    saved["properties"]["signing_secret"] = {
        "type": "string",
        "readOnly": True,
        "description": "Only when the save made a signing secret (a new real-time delivery, "
        "one turned real-time, or the secret sent empty): shown this once.",
    }
    schemas["DeliverySaved"] = saved
    if "Replay" in schemas:
        schemas["Replay"] = _replay(schemas["Replay"])
        replay = result["paths"].get("/api/v1/deliveries/{id}/replay/", {}).get("post")
        if replay:  # no body is none of its three forms
            replay["requestBody"]["required"] = True
    _use_bodies(result)
    schemas.pop("PatchedDelivery", None)
    return result


_DESCRIPTIONS = {
    "Create": "A new delivery: the settings of its kind.",
    "Replace": "Every setting of the delivery: one omitted takes its default, as on "
    "creation, except the secrets, client and starts_at, which are kept unless given.",
    "Patch": "Some settings of the delivery, with its kind (a PATCH keeps the kind: another "
    "one is a 409; replace the delivery to change it). The delivery as patched must be "
    "complete for its kind (e.g. auth_kind basic with a username and a password, given or "
    "stored): else a 400 names the setting.",
}


def _writable(properties: dict) -> dict:
    settings = {}
    for name, schema in properties.items():
        if schema.get("readOnly"):
            continue
        schema = {key: value for key, value in schema.items() if key != "writeOnly"}
        settings[name] = {**schema, **CONSTRAINTS.get(name, {})}
    return settings


def _kind_schema(schemas: dict, settings: dict, kind: str, body: str) -> str:
    """The component for ``kind``'s ``body``, registered; its reference."""
    channel = CHANNELS[kind]
    name = f"{kind.title()}Delivery{body}"
    properties = {field: settings[field] for field in (*COMMON, *SETTINGS[kind])}
    properties["kind"] = {"type": "string", "enum": [kind]}
    required = ["kind"]
    if body != "Patch":
        required += [
            field
            for field in ("client", "name", *REQUIRED[kind])
            if not (body == "Replace" and field in ("client", *SECRETS))
        ]
    base = {
        "type": "object",
        "properties": properties,
        "required": required,
        "description": channel.api_rules,
    }
    for secret in channel.api_non_empty:
        properties[secret] = {"type": "string", "minLength": 1}
    if channel.api_one_of_on_create and body == "Create":
        base["anyOf"] = [
            {"required": [secret], "properties": {secret: {"type": "string", "minLength": 1}}}
            for secret in channel.api_one_of_on_create
        ]
    if body == "Patch":
        schemas[name] = base
        return f"#/components/schemas/{name}"
    setting = channel.api_choice
    choices = CHOICES[setting]
    variants = []
    for index, (choice, needs) in enumerate(choices.items()):
        variant = copy.deepcopy(base)
        variant["properties"][setting] = {"type": "string", "enum": [choice]}
        variant["properties"].update(needs)
        needed = [n for n in needs if n not in OPTIONAL_BY_CHOICE]
        if body == "Replace":
            needed = [n for n in needed if n not in SECRETS]
        variant["required"] += ([] if index == 0 else [setting]) + needed
        variant["description"] = f"{setting} {choice}. {channel.api_rules}"
        schemas[f"{name}{_camel(choice)}"] = variant
        variants.append({"$ref": f"#/components/schemas/{name}{_camel(choice)}"})
    schemas[name] = {"oneOf": variants}
    return f"#/components/schemas/{name}"


def _replay(generated: dict) -> dict:
    """Replay takes one of three bodies, and nothing besides (``ReplaySerializer``)."""
    fields = generated["properties"]
    fields["referral"] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    fields["not_delivered"] = {"type": "boolean", "enum": [True]}
    return {
        "description": generated["description"] + " The end is after the start.",
        "oneOf": [
            {"type": "object", "additionalProperties": False, "required": list(form),
             "properties": {name: fields[name] for name in form}}
            for form in REPLAY_CHOICES
        ],
    }  # fmt: skip


def _camel(choice: str) -> str:
    return "".join(part.title() for part in choice.split("_"))


def _use_bodies(result: dict) -> None:
    for path, operations in result["paths"].items():
        if not path.startswith("/api/v1/deliveries/"):
            continue
        for method, body in (("post", "Create"), ("put", "Replace"), ("patch", "Patch")):
            operation = operations.get(method)
            if operation is None or path.count("{") != (method != "post"):
                continue
            content = operation["requestBody"]["content"]["application/json"]
            content["schema"] = {"$ref": f"#/components/schemas/Delivery{body}"}
            operation["requestBody"]["required"] = True
            answer = operation["responses"]["201" if method == "post" else "200"]
            answer["content"]["application/json"]["schema"] = {
                "$ref": "#/components/schemas/DeliverySaved"
            }
