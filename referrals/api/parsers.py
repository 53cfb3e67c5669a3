from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework import renderers, status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import BaseParser, JSONParser

from referrals.storable import not_storable_message, unstorable_path

# Nesting levels a body may use: a list of records holding ``extra`` leaves ample room for
# nested attributes, and a bound keeps every later step (serializer, JSON column, renderer)
# far from Python's recursion limit.
MAX_JSON_DEPTH = 64
# Only an escape can put a lone surrogate into a string decoded from UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = (
        "Send a Content-Length header, or a chunked body through a server that de-chunks it."
    )
    default_code = "length_required"


class BoundedJSONParser(BaseParser):
    """JSON, read with a byte limit, in UTF-8 only.

    Not a ``JSONParser`` subclass on purpose: DRF hands those the whole of ``request.body``,
    which Django refuses past DATA_UPLOAD_MAX_MEMORY_SIZE with a bare HTML 400. This parser
    reads the stream itself, at most one byte past the limit, so an oversized body answers 413
    (also a chunked one, see ``chunked_body``). It refuses NaN and Infinity, lone surrogate
    escapes (no Unicode character, and not storable) and nesting deeper than MAX_JSON_DEPTH.
    """

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.INGEST_MAX_BODY_BYTES
        too_large = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise too_large
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The request body is not UTF-8 (byte {exc.start}).") from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        except ValueError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        _check_values(data, check_strings=_SURROGATE_ESCAPE.search(raw) is not None)
        return data


def chunked_body(request) -> Any:
    """The stream of a body sent without a Content-Length (chunked), or ``None``.

    Django reads no body without a Content-Length, so DRF would see an empty one. A WSGI server
    that de-chunks the body (gunicorn) says so with ``wsgi.input_terminated``: the body is then
    read from ``wsgi.input``, still through the parser's byte limit. Without that promise the
    body cannot be read safely: 411.
    """
    meta = request.META
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if meta.get("CONTENT_LENGTH") or not chunked:
        return None
    if not meta.get("wsgi.input_terminated") or "wsgi.input" not in meta:
        raise LengthRequired()
    return meta["wsgi.input"]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep() -> str:
    return f"The JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)."


def _check_values(data: Any, *, check_strings: bool) -> None:
    """Refuse nesting past MAX_JSON_DEPTH and, if asked, strings with lone surrogates."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ParseError(_too_deep())
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if check_strings and isinstance(key, str):
                    _check_string(key)
                stack.append((item, depth + 1))
        elif check_strings and isinstance(value, str):
            _check_string(value)


def _check_string(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(
            f"The JSON holds a lone surrogate escape (\\u{ord(value[exc.start]):04x}), "
            "which is no Unicode character."
        ) from None


def refuse_unstorable(data: Any) -> None:
    """400 naming each field whose value holds text PostgreSQL cannot store (a NUL, a lone
    surrogate), before any serializer looks it up or saves it."""
    items = list(data.items()) if isinstance(data, dict) else [("non_field_errors", data)]
    errors = {}
    for name, value in items:
        path = unstorable_path(value)
        if path is not None:
            errors[name] = [not_storable_message(path)]
    if errors:
        raise ValidationError(errors)


class StorableJSONParser(JSONParser):
    """DRF's JSON parser, refusing text that cannot be stored (see ``refuse_unstorable``)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        refuse_unstorable(data)
        return data
