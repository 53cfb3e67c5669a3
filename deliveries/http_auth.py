"""How a real-time API delivery authenticates, and keeping its secrets out of logs.

Kinds: none; basic (RFC 7617); a bearer token (RFC 6750); an API key in a header; an API key
in the query string. ``auth_apply`` says what to add to a request; the caller sends it, and
logs only what ``redact_headers`` and ``redact_url`` return.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from deliveries.setting_patterns import (
    BASIC_PASSWORD,
    BASIC_USERNAME,
    HEADER_NAME,
    PARAM_NAME,
    VISIBLE_ASCII,
)
from deliveries.setting_patterns import RESERVED_HEADERS as _RESERVED

AUTH_KINDS = ("none", "basic", "bearer", "api_key_header", "api_key_query")
REDACTED = "[redacted]"
# Headers that carry credentials whatever the delivery's settings. Signatures are not
# secrets (they prove one body, and are useless for another), so they stay readable.
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# Headers the HTTP client, the payload or the signature sets: an API key header or a custom
# header must not replace them (a second Content-Type would be sent joined to the first).
RESERVED_HEADERS = frozenset(_RESERVED)


def auth_apply(
    kind: str, *, username: str, secret: str, key_name: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(headers to add, query parameters to add); parameters are for the caller to encode."""
    # Checked again at send time: a header value with CR/LF must never reach the wire.
    errors = auth_errors(kind, username=username, secret=secret, key_name=key_name)
    if errors:
        raise ValueError(" ".join(errors.values()))
    if kind == "basic":
        credentials = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
        return [("Authorization", f"Basic {credentials}")], []
    if kind == "bearer":
        return [("Authorization", f"Bearer {secret}")], []
    if kind == "api_key_header":
        return [(key_name, secret)], []
    if kind == "api_key_query":
        return [], [(key_name, secret)]
    return [], []


def auth_errors(kind: str, *, username: str, secret: str, key_name: str) -> dict[str, str]:
    """Field ("kind", "username", "secret", "key_name") -> what is wrong with it."""
    if kind not in AUTH_KINDS:
        return {"kind": f"Choose one of: {', '.join(AUTH_KINDS)}."}
    problems = {
        "username": _username_problem(kind, username),
        "secret": _secret_problem(kind, secret),
        "key_name": _key_name_problem(kind, key_name),
    }
    return {field: problem for field, problem in problems.items() if problem}


def _username_problem(kind: str, username: str) -> str | None:
    if kind != "basic":
        return None
    if not username:
        return "Basic authentication needs a username."
    # RFC 7617: the first ':' ends the user-id; control characters are not allowed.
    if not BASIC_USERNAME.fullmatch(username):
        return "A username may not hold ':' or control characters."
    return None


def _secret_problem(kind: str, secret: str) -> str | None:
    if kind == "none":
        return None
    if not secret:
        return {
            "basic": "Basic authentication needs a password.",
            "bearer": "Bearer authentication needs a token.",
        }.get(kind, "An API key is needed.")
    if kind == "basic" and not BASIC_PASSWORD.fullmatch(secret):
        return "A password may not hold control characters."  # RFC 7617; sent as UTF-8
    # Header values are ASCII on the wire. A key in the query may be any text: it is
    # percent-encoded.
    if kind in ("bearer", "api_key_header") and not _visible_ascii(secret):
        return "A token or key sent in a header is visible ASCII characters, without spaces."
    return None


def _key_name_problem(kind: str, key_name: str) -> str | None:
    if kind == "api_key_header":
        if not key_name:
            return "Name the header that carries the API key."
        if not HEADER_NAME.fullmatch(key_name):
            return "A header name is letters, digits and - _ . ! # $ % & ' * + ^ ` | ~."
        if key_name.lower() in RESERVED_HEADERS:
            return f"{key_name} is set by the delivery itself: choose another header."
    if kind == "api_key_query":
        if not key_name:
            return "Name the query parameter that carries the API key."
        if not PARAM_NAME.fullmatch(key_name):
            return "A parameter name is letters, digits and - _ . ~."
    return None


def redact_headers(
    headers: list[tuple[str, str]], *, secret_header_names: set[str]
) -> list[tuple[str, str]]:
    """``headers`` with the values of credential headers replaced by ``[redacted]``."""
    secret = ALWAYS_SECRET_HEADERS | {name.lower() for name in secret_header_names}
    return [(name, REDACTED if name.lower() in secret else value) for name, value in headers]


def redact_url(url: str, *, secret_params: set[str]) -> str:
    """``url`` with the values of ``secret_params`` and any password replaced by ``[redacted]``.

    Works on the raw query so that everything else is shown exactly as sent. Names compare
    without case: hiding too much from a log is better than too little.
    """
    parts = urlsplit(url)
    secret = {name.lower() for name in secret_params}
    fields = []
    for field in parts.query.split("&") if parts.query else []:
        name, equals, _ = field.partition("=")
        hidden = equals and unquote_plus(name).lower() in secret
        fields.append(f"{name}={REDACTED}" if hidden else field)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(fields)))


def _visible_ascii(text: str) -> bool:
    return VISIBLE_ASCII.fullmatch(text) is not None
