"""Every error the API answers has one shape, and every operation documents the errors it
can answer with it.

The shape (``Error`` in the schema) is DRF's own field-error object, made uniform: an object
whose ``detail`` (text) says what is wrong with the request as a whole, and whose every
other key is a field of the request holding that field's messages (a list; an element of a
list field is an object of its own fields' messages). DRF answers some errors as a bare list
or with ``detail`` as a list: both are rewritten here.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

ERROR_SCHEMA = {
    "type": "object",
    "description": "``detail``: what is wrong with the request as a whole. Every other key "
    "is a field of the request (``non_field_errors``: the fields together), with its "
    "messages.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {
        "type": "array",
        "items": {"anyOf": [{"type": "string"}, {"type": "object"}]},
    },
}


class Conflict(APIException):
    """409: the request is well formed, but the object's state (or another object's) forbids
    it, e.g. a name already taken, or an action the delivery's kind does not have. An operation
    that can raise it documents it with ``CONFLICT`` in its ``responses``."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict) -> Any:
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(response.data)
    return response


def error_body(data: Any) -> dict:
    """DRF's error data in the one shape described above."""
    if isinstance(data, list):
        return {"detail": _joined(data)}
    if isinstance(data.get("detail"), list):
        return {**data, "detail": _joined(data["detail"])}
    return data


def _joined(messages: list) -> str:
    return " ".join(str(message) for message in messages)


class ContractSchema(AutoSchema):
    """drf-spectacular's schema, with each operation's error answers documented as ``Error``:
    401 and 403 everywhere; 400 for a write, or a read with query parameters (a bad filter or
    page size); 404 for one object, or a page cursor; 409 where the operation's
    ``extend_schema(responses=...)`` lists it; 415 for a body."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        component = ResolvedComponent(
            name="Error", type=ResolvedComponent.SCHEMA, object="Error", schema=ERROR_SCHEMA
        )
        self.registry.register_on_missing(component)
        parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        errors = {
            "401": "No credentials, or invalid ones.",
            "403": "The caller may not do this.",
        }
        if method != "GET" or parameters:
            errors["400"] = "The request is invalid: the messages say why, field by field."
        if "{" in path or "cursor" in parameters:
            errors["404"] = "No such object for this caller (or no such page cursor)."
        if "409" in operation["responses"]:
            errors["409"] = Conflict.default_detail
        if "requestBody" in operation:
            errors["415"] = "The body is not in a supported media type."
        responses = operation["responses"]
        for code, description in errors.items():
            documented = responses.setdefault(code, {"description": description})
            content = documented.setdefault("content", {}).setdefault("application/json", {})
            if "schema" in content:  # a documented answer of its own, or this shape
                content["schema"] = {"anyOf": [content["schema"], component.ref]}
            else:
                content["schema"] = component.ref
        return operation


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404 page, except under /api/ (a path no route matches, such as an id that is
    no number): there the ``Error`` shape in JSON, as every API answer."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
