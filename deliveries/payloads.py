"""The body of a real-time API delivery: JSON, a form, XML or a query string.

Built two ways: from the delivery's columns (output name -> value, in order), or from a
template in the product's one placeholder syntax (``{{{Field}}}``) whose placeholders are
replaced by values escaped for the format, so that no value can break the document.

Two kinds of characters cannot be sent as they are:

- a lone surrogate (possible in text decoded from JSON, not encodable in UTF-8) becomes "?",
  in every format, rather than failing the delivery;
- characters XML 1.0 forbids (C0 controls other than tab, newline and carriage return;
  U+FFFE, U+FFFF) are *dropped* from XML values. No escape can carry them (``&#0;`` is not
  well-formed either), so the choice is between dropping and a visible replacement; a
  replacement character would arrive as data in the receiver's records, while these
  characters are invisible noise (pasted from forms) that nobody means to send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote_plus, urlencode

# Parses only documents of our own making (samples of a template with DOCTYPE refused), never
# received XML: expat neither loads external entities nor expands unbounded ones.
from xml.etree import ElementTree

from customfields.placeholders import (
    CLOSE,
    OPEN,
    Placeholder,
    PlaceholderSyntaxError,
    parse_template,
)

FORMATS = ("json", "form", "xml", "query")
CONTENT_TYPES = {
    "json": "application/json",  # JSON is UTF-8 by definition (RFC 8259): no charset
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml; charset=utf-8",
    "query": "",
}
XML_ROOT = "referral"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


class PayloadError(ValueError):
    """A payload that cannot be built: unknown format, bad template or name, missing value."""


@dataclass(frozen=True)
class Payload:
    body: bytes  # empty for "query"
    content_type: str  # "" for "query"
    query: str  # to append to the URL (without "?") for "query"; "" otherwise


def payload_from_columns(fmt: str, pairs: list[tuple[str, str]]) -> Payload:
    """The payload of ``pairs`` (output name, value), in order."""
    _check_format(fmt)
    pairs = [(_encodable(name), _encodable(value)) for name, value in pairs]
    if fmt == "json":
        # Output names are unique (deliveries.validation.columns_errors): no value is lost.
        return _payload(fmt, json.dumps(dict(pairs), ensure_ascii=False))
    if fmt == "xml":
        bad = [name for name, _ in pairs if not xml_name_valid(name)]
        if bad:
            raise PayloadError(_xml_name_message(bad[0]))
        elements = "".join(f"<{name}>{xml_escape(value)}</{name}>" for name, value in pairs)
        return _payload(fmt, f"{XML_DECLARATION}<{XML_ROOT}>{elements}</{XML_ROOT}>")
    return _payload(fmt, urlencode(pairs))  # form and query: quote_plus, UTF-8


def payload_from_template(fmt: str, template: str, values: Mapping[str, str]) -> Payload:
    """``template`` with each placeholder replaced by its value, escaped for ``fmt``.

    ``values`` maps placeholder names (any case) to text. Values are inserted once, never
    re-read as templates: a value holding ``{{{Email}}}`` is sent as that text.
    """
    _check_format(fmt)
    escape = _ESCAPES[fmt]
    by_name = {name.lower(): value for name, value in values.items()}
    pieces = []
    for part in _parse(template):
        if isinstance(part, str):
            pieces.append(part)
            continue
        try:
            value = by_name[part.name.lower()]
        except KeyError:
            raise PayloadError(f"No value for the placeholder {_shown(part.name)}.") from None
        pieces.append(escape(_encodable(value)))
    return _payload(fmt, "".join(pieces))


def template_placeholders(template: str) -> list[str]:
    """The placeholder names of ``template``, in order of first use, each once (any case)."""
    return _unique(part.name for part in _parse(template) if isinstance(part, Placeholder))


def payload_errors(fmt: str, *, template: str | None, output_names: list[str]) -> list[str]:
    """What is wrong with a delivery's payload settings; ``template`` None means columns.

    Unknown placeholders are the caller's to check (it knows the client's fields), and so
    are blank and duplicate output names (``columns_errors``).
    """
    if fmt not in FORMATS:
        return [f"Choose a format: {', '.join(FORMATS)}."]
    if template is None:
        if fmt != "xml":
            return []
        return [
            _xml_name_message(name) for name in output_names if name and not xml_name_valid(name)
        ]
    if not template.strip():
        return ["The template is empty."]
    try:
        parts = parse_template(template)
    except PlaceholderSyntaxError as exc:
        return [str(exc)]
    return _TEMPLATE_CHECKS[fmt](template, _spans(template, parts))


# --- Escaping ---------------------------------------------------------------------------

_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Quotes too, since a template may put a value in an attribute. Tab, newline and carriage
# return as character references: parsers turn raw ones into spaces in attributes, and a raw
# carriage return into a newline anywhere.
_XML_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&apos;",
    "\t": "&#9;",
    "\n": "&#10;",
    "\r": "&#13;",
}
_XML_SPECIAL = re.compile("[&<>\"'\t\n\r]")


def xml_escape(value: str) -> str:
    """``value`` as XML text or attribute value, without the characters XML forbids."""
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], _XML_FORBIDDEN.sub("", value))


def _json_escape(value: str) -> str:
    # The inside of a JSON string: the template supplies the quotes.
    return json.dumps(value, ensure_ascii=False)[1:-1]


_ESCAPES: dict[str, Callable[[str], str]] = {
    "json": _json_escape,
    "xml": xml_escape,
    "form": quote_plus,  # the template holds the names and "=" / "&"; values are encoded
    "query": quote_plus,
}


def _encodable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"


# ASCII only: XML 1.0's full name grammar admits letters that older parsers (expat among
# them) reject; a colon would need a namespace declaration.
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def xml_name_valid(name: str) -> bool:
    # Names starting with "xml", in any case, are reserved by the XML specification.
    return bool(_XML_NAME.fullmatch(name)) and not name.lower().startswith("xml")


def _xml_name_message(name: str) -> str:
    return (
        f"{name!r} cannot be an XML element name: use letters, digits, '_', '-' and '.', "
        "start with a letter or '_', and not with 'xml'."
    )


# --- Templates --------------------------------------------------------------------------

Span = tuple[int, int, str]  # start, end and name of a placeholder in the template


def _parse(template: str) -> list[str | Placeholder]:
    try:
        return parse_template(template)
    except PlaceholderSyntaxError as exc:
        raise PayloadError(str(exc)) from None


def _spans(template: str, parts: list[str | Placeholder]) -> list[Span]:
    # parse_template keeps no positions; a placeholder runs from its "{{{" to the first "}}}".
    spans, position = [], 0
    for part in parts:
        if isinstance(part, str):
            position += len(part)
        else:
            end = template.index(CLOSE, position + len(OPEN)) + len(CLOSE)
            spans.append((position, end, part.name))
            position = end
    return spans


def _fill(template: str, spans: list[Span], value: Callable[[str, str], str]) -> str:
    """``template`` with each placeholder replaced by ``value(name, placeholder text)``."""
    pieces, position = [], 0
    for start, end, name in spans:
        pieces += [template[position:start], value(name, template[start:end])]
        position = end
    return "".join([*pieces, template[position:]])


def _sample(template: str, spans: list[Span]) -> str:
    # "x" for every character of a placeholder: harmless in every format, and the line and
    # column of a parse error still point into the template as written.
    return _fill(template, spans, lambda _name, text: re.sub("[^\n]", "x", text))


def _where(template: str, position: int) -> str:
    line = template.count("\n", 0, position) + 1
    column = position - template.rfind("\n", 0, position)  # 1-based: rfind gives -1 on line 1
    return f"line {line}, column {column}"


def _json_template_errors(template: str, spans: list[Span]) -> list[str]:
    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        json.loads(_sample(template, spans), parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        for start, end, name in spans:
            if start <= exc.pos < end:
                return [
                    f"The placeholder {_shown(name)} at {_where(template, start)} must be "
                    'inside a JSON string ("…"): values are sent as text.'
                ]
        return [f"The template is not valid JSON: {exc.msg} at {_where(template, exc.pos)}."]
    except ValueError as exc:  # NaN, Infinity: Python accepts them, JSON does not
        return [f"The template is not valid JSON: {exc}."]
    return []


_XML_DTD = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_ENCODING = re.compile(r"<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
# A value with every character that escaping must protect, and spaces and "--" that break
# names and comments: a placeholder where it still parses is where values are data. Unless
# it is in CDATA, where the escapes stay as they are: _CDATA_SIGN then shows in the text.
_PROBE = xml_escape("x <&>\"'\t\r\n-- ]]>")
_CDATA_SIGN = xml_escape("<&>")


def _xml_template_errors(template: str, spans: list[Span]) -> list[str]:
    if _XML_DTD.search(template):
        return ["The template may not hold <!DOCTYPE …> or <!ENTITY …> declarations."]
    declared = _XML_ENCODING.match(template)
    if declared and declared.group(1).lower().replace("-", "") != "utf8":
        return [f'The body is sent as UTF-8: declare encoding="UTF-8", not {declared.group(1)!r}.']
    try:
        base = _xml_parse(_sample(template, spans))
    except ElementTree.ParseError as exc:
        message = str(exc).split(": line ")[0]
        line, column = exc.position  # expat counts columns from 0
        return [
            f"The template is not well-formed XML: {message} at line {line}, column {column + 1}."
        ]
    problems = []
    # Spellings as written: {{{Email}}} and {{{email}}} are probed apart, which is harmless.
    for name in {name: None for _, _, name in spans}:
        probed = _fill(template, spans, lambda other, _, n=name: _PROBE if other == n else "x")
        try:
            root = _xml_parse(probed)
        except ElementTree.ParseError:
            problems.append(
                f"The placeholder {_shown(name)} must be in element text or an attribute "
                "value (not in a tag or attribute name, or a comment)."
            )
            continue
        if _cdata_signs(root) > _cdata_signs(base):  # more than the template's own text has
            problems.append(
                f"The placeholder {_shown(name)} is in a CDATA section or processing "
                "instruction, where its escaped value would arrive as '&amp;' and '&lt;': "
                "put it in plain element text."
            )
    return problems


def _xml_parse(text: str) -> ElementTree.Element:
    # Processing instructions kept, so that a placeholder in one is seen like one in CDATA.
    # Only our own samples are parsed here (S314).
    builder = ElementTree.TreeBuilder(insert_pis=True)
    parser = ElementTree.XMLParser(target=builder)  # noqa: S314
    return ElementTree.fromstring(text.encode("utf-8"), parser)  # noqa: S314


def _cdata_signs(root: ElementTree.Element) -> int:
    texts = []
    for element in root.iter():
        texts += [element.text or "", element.tail or "", *element.attrib.values()]
    return sum(text.count(_CDATA_SIGN) for text in texts)


# What may stand in a form body or a query string as written: RFC 3986 query characters and
# %XX escapes. Spaces and non-ASCII would be sent raw, and a "#" would cut the URL short.
_URL_TEXT = re.compile(r"(?:[A-Za-z0-9\-._~!$'()*+,;=:@/?&]|%[0-9A-Fa-f]{2})")


def _urlencoded_template_errors(template: str, spans: list[Span], *, query: bool) -> list[str]:
    sample, position = _sample(template, spans), 0
    while position < len(sample):
        match = _URL_TEXT.match(sample, position)
        if not match:
            return [
                f"The template has {sample[position]!r} at {_where(template, position)}: "
                "write it percent-encoded (a space is '+', '%' is '%25', '#' is '%23')."
            ]
        position = match.end()
    if query and template.startswith("?"):
        return ["Leave out the leading '?': the query string is appended to the URL."]
    try:
        parse_qsl(sample, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return ["The template must be name=value pairs joined by '&'."]
    return []


_TEMPLATE_CHECKS: dict[str, Callable[[str, list[Span]], list[str]]] = {
    "json": _json_template_errors,
    "xml": _xml_template_errors,
    "form": lambda template, spans: _urlencoded_template_errors(template, spans, query=False),
    "query": lambda template, spans: _urlencoded_template_errors(template, spans, query=True),
}


# --- Helpers ----------------------------------------------------------------------------


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise PayloadError(f"Unknown payload format {fmt!r}; use one of: {', '.join(FORMATS)}.")


def _payload(fmt: str, text: str) -> Payload:
    if fmt == "query":
        return Payload(body=b"", content_type="", query=text)
    return Payload(body=text.encode("utf-8"), content_type=CONTENT_TYPES[fmt], query="")


def _shown(name: str) -> str:
    return f"{OPEN}{name}{CLOSE}"


def _unique(names) -> list[str]:
    """``names`` in order, each once whatever its case (the first spelling is kept)."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return list(seen.values())
