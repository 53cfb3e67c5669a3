"""What the ingestion serializer cannot tell drf-spectacular, published by a postprocessing
hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): text fields that take a whole number
too, a list's bounds, the outcome of each record, and the Error shape of 411 and 413.

Each rule is read from the serializer's own fields and settings, so it cannot drift from
what ingestion accepts.
"""

from __future__ import annotations

from django.conf import settings

from referrals.api.serializers import ReferralIngestSerializer, TextOrNumberField, number_range

REF = "#/components/schemas/"
ERROR = {"application/json": {"schema": {"$ref": REF + "Error"}}}
NOT_BLANK = r"\S"  # DRF trims text: white space alone is blank
# The end of the text: in Python, "$" alone also matches before a final newline.
END = r"(?!\n)$"
SLUG = r"^[-a-zA-Z0-9_]+" + END
# The DecimalField's bounds: 12 digits, 4 of them decimals.
BID_PRICE_LIMIT = 99999999.9999


def referral_schemas(result, generator, request, public):
    schemas = result["components"]["schemas"]
    if "ReferralIngest" not in schemas:
        return result
    record = schemas["ReferralIngest"]
    record["additionalProperties"] = False  # unknown fields are refused: they go in extra
    record["properties"]["client"]["pattern"] = SLUG
    for name, field in ReferralIngestSerializer().fields.items():
        if isinstance(field, TextOrNumberField):
            record["properties"][name] = _text(field, record["properties"][name])
    record["properties"]["bid_price"] = {
        "nullable": True,
        "oneOf": [
            record["properties"]["bid_price"] | {"nullable": False},
            {"type": "number", "minimum": -BID_PRICE_LIMIT, "maximum": BID_PRICE_LIMIT},
        ],
        "description": "A decimal, as text or a number, with at most 4 decimal places.",
    }
    record["properties"]["ip_address"] = {
        "nullable": True,
        "oneOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}],
        "description": "An IPv4 or IPv6 address; null: none.",
    }
    record["properties"]["extra"] = {
        "type": "object",
        "additionalProperties": {},
        "nullable": True,
        "description": "Further attributes: any JSON values, nested up to 64 levels, no NUL "
        "character. Each top-level key is usable as the column extra.KEY. null: none.",
    }
    schemas["ReferralIngestRequest"]["oneOf"][1].update(
        {"minItems": 1, "maxItems": settings.INGEST_MAX_RECORDS}
    )
    schemas["Referral"]["properties"]["extra"] = {"type": "object", "readOnly": True}
    # Stored as sent: an address, or empty when the record had none (never "format: email").
    schemas["Referral"]["properties"]["email"] = {
        "type": "string",
        "readOnly": True,
        "description": "The email address as sent, or empty when the record had none.",
    }
    schemas["IngestResult"] = _result_schema()
    schemas.pop("IngestResultStatusEnum", None)  # the enum hook's, now used by nothing
    post = result["paths"]["/api/v1/referrals/"]["post"]
    post["requestBody"]["required"] = True  # an empty body is a 400
    for code in ("411", "413"):
        post["responses"][code]["content"] = ERROR
    return result


def _text(field: TextOrNumberField, documented: dict) -> dict:
    """Text, or (when the field takes one) a whole number whose digits fit."""
    text = {"type": "string"}
    if field.max_length is not None:
        text["maxLength"] = field.max_length
    if "pattern" in documented:
        text["pattern"] = documented["pattern"]
    if not field.allow_blank:
        text["pattern"] = NOT_BLANK
    if field.field_name in ("country", "currency"):
        text["pattern"] = f"^(?:[A-Za-z]{{{field.max_length}}})?$"
    schema = text
    if field.numbers:
        low, high = number_range(field.max_length)
        schema = {"oneOf": [text, {"type": "integer", "minimum": low, "maximum": high}]}
    if field.allow_null:
        schema = {**schema, "nullable": True}
    if documented.get("description"):
        schema["description"] = documented["description"]
    return schema


def _result_schema() -> dict:
    stored = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "status": {"type": "string", "enum": ["created", "duplicate"]},
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
        },
        "required": ["index", "status", "id", "external_id"],
        "additionalProperties": False,
    }
    invalid = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "status": {"type": "string", "enum": ["invalid"]},
            "external_id": {"type": "string", "description": "As sent, when it was text."},
            "errors": {"type": "array", "minItems": 1, "items": {"$ref": REF + "IngestError"}},
        },
        "required": ["index", "status", "errors"],
        "additionalProperties": False,
    }
    return {
        "description": "One record's outcome, in the order sent.",
        "oneOf": [stored, invalid],
    }
