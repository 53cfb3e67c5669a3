"""What the erasure serializers cannot tell drf-spectacular, by a postprocessing hook
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): each body is closed (unknown fields are
refused, so an email and an external id together match neither), a client is a slug, and the
body is required."""

from __future__ import annotations

from referrals.api.schema import SLUG

BODIES = ("ErasureByEmail", "ErasureByExternalId")


def erasure_schemas(result, generator, request, public):
    schemas = result["components"]["schemas"]
    for name in BODIES:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
            schemas[name]["properties"]["client"]["pattern"] = SLUG
    erase = result["paths"].get("/api/v1/erasures/", {}).get("post")
    if erase is not None:
        erase["requestBody"]["required"] = True
    return result
