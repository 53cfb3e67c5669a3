"""What the serializer cannot tell drf-spectacular: a definition's shape per kind.

A postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) publishes the request
body of a create, a replace and a preview as ``oneOf`` by ``kind`` with a discriminator. Every
pattern and bound comes from the code that validates a definition (names, sources, rules, date
patterns, time zones), so the schema and the validation cannot drift apart. What no schema can
say (a source or placeholder naming a custom field that exists, a regex both back ends read
alike, a name the client has not used) is in the descriptions.
"""

from __future__ import annotations

import copy
import re
import zoneinfo

from customfields.dateformat import pattern_regex
from customfields.models import CustomField
from customfields.sources import DATE, DATETIME, EXTRA_PREFIX, STANDARD_FIELDS
from customfields.transforms.template import MAX_LENGTH as TEMPLATE_MAX_LENGTH
from customfields.transforms.value_map import MAX_RULES, RULE_SCHEMA
from customfields.validation import NAME_PATTERN, RESERVED_NAMES
from referrals.api.schema import END, SLUG, referral_schemas

REF = "#/components/schemas/"
READ_ONLY = {"id", "created_at", "updated_at"}


def any_case(word: str) -> str:
    """``word`` as a regex that matches it in any letter case, without an inline flag
    (ECMAScript has none): ``[eE][xX]``..."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _one_of_words(words) -> str:
    return "(?:" + "|".join(any_case(word) for word in sorted(words)) + ")"


NAME = f"^(?!{_one_of_words(RESERVED_NAMES)}$){NAME_PATTERN.pattern}{END}"
# A standard field (any case), another custom field (a name), or extra.<key>.
SOURCE = (
    f"^(?:(?!{any_case('extra')}$){NAME_PATTERN.pattern}|{any_case(EXTRA_PREFIX)}[^\\x00]+){END}"
)


def _fields_of(*types: str) -> str:
    """The standard fields of ``types``, in any case."""
    return "^" + _one_of_words(n for n, f in STANDARD_FIELDS.items() if f.type in types) + END


def custom_field_schemas(result, generator, request, public):
    # Ingestion's shapes first (one settings line for both apps): the preview's sample is a
    # record as ingestion takes it.
    result = referral_schemas(result, generator, request, public)
    schemas = result["components"]["schemas"]
    if "CustomField" not in schemas or "ReferralIngest" not in schemas:
        return result
    schemas["CustomFieldRule"] = copy.deepcopy(RULE_SCHEMA)
    schemas["TimeZoneOrBlank"] = {
        "type": "string",
        "enum": ["", *sorted(zoneinfo.available_timezones())],
        "description": "An IANA time zone; empty: the client's.",
    }
    for name in ("CustomField", "PatchedCustomField"):
        schemas[name]["properties"].update(_shared_properties())
    base = {
        name: prop
        for name, prop in schemas["CustomField"]["properties"].items()
        if name not in READ_ONLY
    }
    sample = {
        "type": "object",
        "description": "Referral fields to render, as ingestion takes them; client and "
        "campaign_name are ignored.",
        "properties": copy.deepcopy(schemas["ReferralIngest"]["properties"]),
        "additionalProperties": False,
    }
    create, preview = {}, {}
    for kind in CustomField.Kind.values:
        component = f"CustomField{_camel(kind)}Request"
        schemas[component] = _kind_schema(kind, base)
        create[kind] = component
        schemas[f"Preview{component}"] = {
            "allOf": [
                {"$ref": REF + component},
                {"type": "object", "properties": {"sample": sample}},
            ]
        }
        preview[kind] = f"Preview{component}"
    schemas["CustomFieldRequest"] = _by_kind(create)
    schemas["CustomFieldPreviewRequest"] = _by_kind(preview)
    schemas.pop("PreviewRequest", None)
    paths = result["paths"]
    for path, method, component in (
        ("/api/v1/custom-fields/", "post", "CustomFieldRequest"),
        ("/api/v1/custom-fields/{id}/", "put", "CustomFieldRequest"),
        ("/api/v1/custom-fields/preview/", "post", "CustomFieldPreviewRequest"),
    ):
        body = paths[path][method]["requestBody"]["content"]["application/json"]
        body["schema"] = {"$ref": REF + component}
    return result


def _shared_properties() -> dict:
    return {
        "client": {
            "type": "string",
            "pattern": SLUG,
            "maxLength": 100,
            "description": "The slug of a client the caller manages.",
        },
        "name": {
            "type": "string",
            "pattern": NAME,
            "maxLength": 64,
            "description": "Letters, digits and underscores, starting with a letter; "
            "not a standard field's name, nor one of the client's other custom fields "
            "(409). Usable as a column and as a placeholder {{{Name}}}.",
        },
        "rules": {
            "type": "array",
            "items": {"$ref": REF + "CustomFieldRule"},
            "maxItems": MAX_RULES,
            "description": "Value map: ordered rules, the first match wins. Other kinds "
            "ignore them.",
        },
        "time_zone": {"$ref": REF + "TimeZoneOrBlank"},
    }


def _reads(description: str) -> dict:
    return {"type": "string", "pattern": SOURCE, "maxLength": 140, "description": description}


SOURCE_TEXT = (
    "A standard field (any case), extra.KEY, or another custom field of this "
    "client (it must exist)."
)
DATE_OUTPUTS = ["iso8601", "excel"]


def _kind_schema(kind: str, base: dict) -> dict:
    """The definition of one kind: every setting typed, the kind's own ones required."""
    own: dict[str, dict] = {
        "value_map": {
            "source": _reads(SOURCE_TEXT),
            "rules": {**base["rules"], "minItems": 1},
            "no_match": {"type": "string", "enum": ["default", "passthrough"]},
        },
        "template": {
            "template": {
                "type": "string",
                "minLength": 1,
                "maxLength": TEMPLATE_MAX_LENGTH,
                "description": "Text with {{{Field}}} placeholders: standard fields, "
                "extra.KEY, or custom fields of this client (they must exist).",
            },
        },
        "constant": {},
        "case": {
            "source": _reads(SOURCE_TEXT),
            "case": {"type": "string", "enum": list(CustomField.Case.values)},
        },
        "hash": {
            "source": _reads(SOURCE_TEXT),
            "algorithm": {"type": "string", "enum": list(CustomField.Algorithm.values)},
        },
    }
    if kind == "datetime":
        return {"oneOf": _datetime_branches(base)}
    required = [
        name for name in ("source", "rules", "template", "case", "algorithm") if name in own[kind]
    ]
    return _object(kind, base, own[kind], required=required)


def _datetime_branches(base: dict) -> list[dict]:
    """A pattern (the default output) takes time directives only from a date-time source;
    ISO 8601 and Excel take any date or date-time source and no pattern."""
    branches = []
    for source_type, has_time in ((DATETIME, True), (DATE, False)):
        branches.append(
            _object(
                "datetime",
                base,
                {
                    "source": {"type": "string", "pattern": _fields_of(source_type)},
                    "date_output": {"type": "string", "enum": ["strftime"]},
                    "date_pattern": {
                        "type": "string",
                        "maxLength": 200,
                        "pattern": pattern_regex(has_time=has_time),
                    },
                },
                required=["source", "date_pattern"],
            )
        )
    branches.append(
        _object(
            "datetime",
            base,
            {
                "source": {"type": "string", "pattern": _fields_of(DATE, DATETIME)},
                "date_output": {"type": "string", "enum": DATE_OUTPUTS},
            },
            required=["source", "date_output"],
        )
    )
    return branches


def _object(kind: str, base: dict, own: dict, *, required: list[str]) -> dict:
    properties = {**copy.deepcopy(base), "kind": {"type": "string", "enum": [kind]}, **own}
    return {
        "type": "object",
        "properties": properties,
        "required": ["client", "name", "kind", *required],
    }


def _by_kind(components: dict[str, str]) -> dict:
    return {
        "oneOf": [{"$ref": REF + name} for name in components.values()],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {kind: REF + name for kind, name in components.items()},
        },
    }


def _camel(kind: str) -> str:
    return "".join(part.title() for part in kind.split("_"))
