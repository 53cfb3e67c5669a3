"""The shapes of delivery settings as regular expressions, shared by the checks that save them
(``deliveries.validation``, ``deliveries.http_auth``, the sender) and the API schema
(``deliveries.api.schema``): a setting the schema's pattern describes is one the save takes,
and the other way round.

Each is written for ``re.fullmatch``; ``anchored`` gives the form a JSON Schema ``pattern``
needs (patterns there match anywhere unless anchored).
"""

from __future__ import annotations

import re

# Text with something in it besides white space (a name, a login).
NON_BLANK = re.compile(r"[\s\S]*\S[\s\S]*")
# A host name or address: no scheme, path or white space.
HOST = re.compile(r"[^\s/]+")
# An RFC 9110 token: a header's name.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A query parameter's name: unreserved characters, sent and redacted as written.
PARAM_NAME = re.compile(r"[A-Za-z0-9._~-]+")
# Visible ASCII without spaces: what a token or key sent in a header may hold.
VISIBLE_ASCII = re.compile(r"[!-~]+")
# Basic authentication (RFC 7617): no control characters; the first ':' ends the user-id.
BASIC_PASSWORD = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
BASIC_USERNAME = re.compile(r"[^:\x00-\x1f\x7f-\x9f]+")
# A time of day, HH:MM.
CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")

# Accepted HTTP statuses: "2xx", codes, and ranges of codes (either way round), by commas.
_STATUS_PART = r"\s*(?:[1-5][xX]{2}|[1-5][0-9]{2}(?:\s*-\s*[1-5][0-9]{2})?)\s*"
ACCEPTED_STATUSES = re.compile(rf"{_STATUS_PART}(?:,{_STATUS_PART})*")

# Standard Webhooks: whsec_ and the standard base64 (padding optional) of 24 to 64 bytes.
_B64 = "[A-Za-z0-9+/]"
_KEY_24_TO_64_BYTES = (
    rf"(?:{_B64}{{4}}){{8,20}}"  # 24 to 60 bytes
    rf"(?:{_B64}{{4}}(?:{_B64}{{2}}(?:==)?)?|{_B64}{{2}}(?:==)?|{_B64}{{3}}=?)?"  # up to 64
)
SIGNING_SECRET = re.compile(rf"whsec_{_KEY_24_TO_64_BYTES}")

# A real-time endpoint: http(s), a host name (no credentials), a port of 1 to 65535, then
# visible ASCII. IPv6 literals and non-ASCII paths: not offered (percent-encode them).
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL = re.compile(
    rf"[hH][tT][tT][pP][sS]?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::{_PORT})?"
    r"(?:[/?#][!-~]*)?"
)
# An SFTP host key pin: a SHA256 fingerprint (alone or in an ``ssh-keygen -lf`` line), or a
# key line (``ssh-ed25519 AAAA...``, a known_hosts line) with its key in base64.
_KEY_TYPE = r"(?:ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521)"
_BASE64 = rf"(?:{_B64}{{4}})+(?:{_B64}{{2}}==|{_B64}{{3}}=)?|{_B64}{{2}}==|{_B64}{{3}}="
HOST_KEY = re.compile(
    r"(?:[\s\S]*\s)?SHA256:[\s\S]*"
    rf"|\s*(?:\S+\s+)?{_KEY_TYPE}\s+(?:{_BASE64})(?:\s[\s\S]*)?"
)
# An FTPS certificate's SHA-256 fingerprint (hex, with or without colons), or nothing.
CERTIFICATE_FINGERPRINT = re.compile(
    r"\s*(?:(?:[sS][hH][aA]-?256[:=\s]*)?(?:[\s:]*[0-9A-Fa-f]){64}[\s:]*)?"
)
# A file name template: safe letters and known placeholders, {{{batch}}} or {{{timestamp}}}
# among them, the first letter not '.' (written without a lookahead, which generators of
# values for a pattern handle badly).
_NAMED = r"\{\{\{(?:client|delivery|batch|date|time|timestamp|part)\}\}\}"
_UNIQUE = r"\{\{\{(?:batch|timestamp)\}\}\}"
_ANY = rf"(?:[A-Za-z0-9._-]|{_NAMED})"
_FIRST = r"[A-Za-z0-9_-]"
FILE_NAME_TEMPLATE = re.compile(
    rf"(?:{_NAMED})*{_UNIQUE}(?:{_NAMED})*(?:{_FIRST}{_ANY}*)?"  # the unique part first
    rf"|(?:{_NAMED})*{_FIRST}{_ANY}*{_UNIQUE}{_ANY}*"  # or after the first letter
)

# A header name the platform sets itself, in any case: no custom header may take it.
RESERVED_HEADERS = (
    "host", "content-length", "content-type", "transfer-encoding", "connection",
    "webhook-id", "webhook-timestamp", "webhook-signature",
)  # fmt: skip


# One line of Latin-1: what a header's value can carry on the wire.
HEADER_VALUE = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\xff]*")


def anchored(pattern: re.Pattern) -> str:
    """``pattern`` for a JSON Schema ``pattern``: the whole value must match."""
    return f"^(?:{pattern.pattern})$"
