"""Validating API bodies against the schema the API serves, as a generated client would."""

from __future__ import annotations

from typing import Any

import jsonschema


def served_schema(api) -> dict:
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json_schema(response.json())


def validator(served: dict, component: str) -> jsonschema.Draft202012Validator:
    """A validator of ``component`` that resolves the document's own references."""
    return jsonschema.Draft202012Validator({**served, "$ref": f"#/components/schemas/{component}"})


def body_validator(served: dict, path: str, method: str) -> jsonschema.Draft202012Validator:
    body = served["paths"][path][method]["requestBody"]["content"]["application/json"]
    return validator(served, body["schema"]["$ref"].rsplit("/", 1)[1])


def response_validator(
    served: dict, path: str, method: str, status: int
) -> jsonschema.Draft202012Validator:
    answer = served["paths"][path][method]["responses"][str(status)]
    return jsonschema.Draft202012Validator(
        {**served, **answer["content"]["application/json"]["schema"]}
    )


def json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema says it."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
