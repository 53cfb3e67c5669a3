"""Bodies, signatures and authentication of real-time API deliveries: pure functions, no DB.

Every body is read back the way a receiver would (json.loads, ElementTree, parse_qsl), and
signatures are verified with the public Standard Webhooks library.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliveries.http_auth import (
    AUTH_KINDS,
    REDACTED,
    auth_apply,
    auth_errors,
    redact_headers,
    redact_url,
)
from deliveries.payloads import (
    FORMATS,
    PayloadError,
    payload_errors,
    payload_from_columns,
    payload_from_template,
    template_placeholders,
)
from deliveries.signing import signing_secret_generate, signing_secret_valid, webhook_headers

NASTY = [
    "plain",
    "",
    "  spaces  ",
    'double " quote',
    "single ' quote",
    "back\\slash \\n \\u0041",
    "new\nline, crlf\r\n, cr\r, tab\t",
    "</x> <y> & &amp; ]]> <![CDATA[ x ]]> <!-- c -->",
    "ünïcödé — 日本語 Ω",
    "emoji 🎉 👩‍👩‍👧 \U0001f600",
    "nul\x00 bell\x07 esc\x1b vt\x0b ff\x0c us\x1f del\x7f",
    "line seps \u2028 \u2029 bom \ufeff nonchars \ufffe \uffff",
    "a=1&b=2+3%20 #frag ?q",
    "{{{Email}}} stays text",
    '{"json": [1, 2]}',
]
NAMES = [f"Field{number}" for number in range(len(NASTY))]


def xml_kept(value: str) -> str:
    """``value`` minus the characters XML 1.0 forbids (which the payload drops)."""
    return "".join(
        char
        for char in value
        if char in "\t\n\r"
        or 0x20 <= ord(char) <= 0xD7FF
        or 0xE000 <= ord(char) <= 0xFFFD
        or ord(char) >= 0x10000
    )


def parse_xml(body: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(body)  # noqa: S314 - our own output, as a receiver reads it


def xml_children(body: bytes) -> list[tuple[str, str]]:
    root = parse_xml(body)
    assert root.tag == "referral"
    return [(child.tag, child.text or "") for child in root]


# --- Column mode ------------------------------------------------------------------------


def test_json_columns_parse_back_to_the_values():
    payload = payload_from_columns("json", list(zip(NAMES, NASTY, strict=True)))
    assert payload.content_type == "application/json"
    assert payload.query == ""
    parsed = json.loads(payload.body.decode("utf-8"))
    assert list(parsed.items()) == list(zip(NAMES, NASTY, strict=True))  # in order
    assert "日本語".encode() in payload.body  # UTF-8, not \\u escapes


def test_form_columns_parse_back_to_the_values():
    payload = payload_from_columns("form", list(zip(NAMES, NASTY, strict=True)))
    assert payload.content_type == "application/x-www-form-urlencoded"
    assert payload.body.isascii()
    pairs = parse_qsl(payload.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    assert pairs == list(zip(NAMES, NASTY, strict=True))


def test_query_columns_parse_back_to_the_values_and_have_no_body():
    payload = payload_from_columns("query", list(zip(NAMES, NASTY, strict=True)))
    assert (payload.body, payload.content_type) == (b"", "")
    url = f"https://example.com/hook?{payload.query}"
    assert urlsplit(url).fragment == ""  # a "#" in a value does not cut the URL short
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert pairs == list(zip(NAMES, NASTY, strict=True))


def test_xml_columns_parse_back_to_the_values_minus_forbidden_characters():
    payload = payload_from_columns("xml", list(zip(NAMES, NASTY, strict=True)))
    assert payload.content_type == "application/xml; charset=utf-8"
    assert payload.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<referral>')
    assert xml_children(payload.body) == [
        (name, xml_kept(value)) for name, value in zip(NAMES, NASTY, strict=True)
    ]
    # Dropped, not replaced; everything else (DEL, U+2028, emoji, CR) survives exactly.
    assert xml_kept("nul\x00 bell\x07 del\x7f") == "nul bell del\x7f"
    assert dict(xml_children(payload.body))["Field6"] == "new\nline, crlf\r\n, cr\r, tab\t"


def test_lone_surrogates_become_question_marks_rather_than_failing():
    for fmt in FORMATS:
        payload = payload_from_columns(fmt, [("Name", "a\ud800b")])
        assert b"\xed" not in payload.body  # no invalid UTF-8
    assert json.loads(payload_from_columns("json", [("Name", "a\ud800b")]).body) == {"Name": "a?b"}


@pytest.mark.parametrize(
    "name", ["1abc", "a b", "xmlThing", "XMLfoo", "Xml", "a:b", "<x>", "ä", "-a", ".a", "a/b"]
)
def test_invalid_xml_element_names_are_refused(name):
    errors = payload_errors("xml", template=None, output_names=["Email", name])
    assert len(errors) == 1 and repr(name) in errors[0]
    with pytest.raises(PayloadError):
        payload_from_columns("xml", [(name, "v")])


def test_valid_xml_element_names_and_other_formats_accept_any_name():
    names = ["Email", "first_name", "_x", "a-b.c", "X1", "referral", "mxl"]
    assert payload_errors("xml", template=None, output_names=names) == []
    assert payload_errors("json", template=None, output_names=["a b", "1", "xml"]) == []
    assert payload_errors("form", template=None, output_names=["a b", "ü"]) == []
    # Blank names are columns_errors' to report, once.
    assert payload_errors("xml", template=None, output_names=[""]) == []


def test_unknown_format():
    assert payload_errors("yaml", template=None, output_names=[]) == [
        "Choose a format: json, form, xml, query."
    ]
    with pytest.raises(PayloadError):
        payload_from_columns("yaml", [])
    with pytest.raises(PayloadError):
        payload_from_template("yaml", "", {})


# --- Template mode ----------------------------------------------------------------------

VALUES = dict(zip(NAMES, NASTY, strict=True))


def test_json_template_keeps_valid_json_for_any_value():
    template = "{\n" + ",\n".join(f'  "{name}": "{{{{{{{name}}}}}}}"' for name in NAMES) + "\n}"
    assert payload_errors("json", template=template, output_names=[]) == []
    payload = payload_from_template("json", template, VALUES)
    assert payload.content_type == "application/json"
    assert json.loads(payload.body) == VALUES


def test_json_template_value_inside_a_longer_string_and_in_a_key():
    template = '{"note": "Dear {{{Field3}}}, from {{{Field5}}}!", "{{{Field0}}}": 1}'
    parsed = json.loads(payload_from_template("json", template, VALUES).body)
    assert parsed == {"note": f"Dear {NASTY[3]}, from {NASTY[5]}!", "plain": 1}


def test_placeholder_lookup_ignores_case_and_values_are_not_expanded_again():
    template = '{"a": "{{{email}}}", "b": "{{{ EMAIL }}}"}'
    parsed = json.loads(payload_from_template("json", template, {"Email": "{{{Other}}}"}).body)
    assert parsed == {"a": "{{{Other}}}", "b": "{{{Other}}}"}


def test_a_missing_value_is_an_error_not_an_empty_string():
    with pytest.raises(PayloadError, match=r"\{\{\{Phone\}\}\}"):
        payload_from_template("json", '{"p": "{{{Phone}}}"}', {"Email": "x"})


def test_xml_template_values_in_text_and_attributes_parse_back():
    template = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<lead source="{{{Field0}}}">'
        + "".join(
            f"<v n='{name}' q=\"{{{{{{{name}}}}}}}\">{{{{{{{name}}}}}}}</v>" for name in NAMES
        )
        + "</lead>"
    )
    assert payload_errors("xml", template=template, output_names=[]) == []
    payload = payload_from_template("xml", template, VALUES)
    assert payload.content_type == "application/xml; charset=utf-8"
    root = parse_xml(payload.body)
    assert root.get("source") == "plain"
    for element in root:
        expected = xml_kept(VALUES[element.get("n")])
        assert (element.text or "") == expected
        assert element.get("q") == expected  # tabs and newlines too, despite normalisation


def test_form_template_values_parse_back():
    template = "&".join(f"{name.lower()}={{{{{{{name}}}}}}}" for name in NAMES) + "&fixed=a%20b"
    assert payload_errors("form", template=template, output_names=[]) == []
    payload = payload_from_template("form", template, VALUES)
    assert payload.content_type == "application/x-www-form-urlencoded"
    pairs = parse_qsl(payload.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    expected = [(name.lower(), value) for name, value in VALUES.items()] + [("fixed", "a b")]
    assert pairs == expected


def test_query_template_values_parse_back():
    template = "key=abc&email={{{Field12}}}&name={{{Field10}}}&e={{{Field9}}}"
    assert payload_errors("query", template=template, output_names=[]) == []
    payload = payload_from_template("query", template, VALUES)
    assert (payload.body, payload.content_type) == (b"", "")
    url = f"https://example.com/hook?{payload.query}"
    assert parse_qsl(urlsplit(url).query, keep_blank_values=True) == [
        ("key", "abc"),
        ("email", NASTY[12]),
        ("name", NASTY[10]),
        ("e", NASTY[9]),
    ]


def test_template_placeholders_in_order_each_once():
    template = '{"a": "{{{Email}}}", "b": "{{{ first_name }}}", "c": "{{{email}}} {{{extra.x}}}"}'
    assert template_placeholders(template) == ["Email", "first_name", "extra.x"]
    with pytest.raises(PayloadError):
        template_placeholders("{{{Email}}")


# --- Template validation ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ('{"a": "{{{Email}}"}', "Unclosed placeholder"),
        ('{"a": "{{{}}}"}', "Empty placeholder"),
        ('{"a": "Email}}}"}', "without an opening"),
    ],
)
def test_placeholder_syntax_errors_are_reported(fmt, template, problem):
    errors = payload_errors(fmt, template=template, output_names=[])
    assert len(errors) == 1 and problem in errors[0]
    with pytest.raises(PayloadError, match=problem):
        payload_from_template(fmt, template, {"Email": "x"})


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_template_is_refused(fmt):
    assert payload_errors(fmt, template="  \n", output_names=[]) == ["The template is empty."]


def test_bad_json_names_the_problem_with_line_and_column():
    template = '{\n  "a": "{{{Email}}}",\n  "b": "x"\n  "c": 1\n}'
    assert payload_errors("json", template=template, output_names=[]) == [
        "The template is not valid JSON: Expecting ',' delimiter at line 4, column 3."
    ]
    # Placeholders take their place in the sample without shifting columns.
    template = '{"a": "{{{A_long_field_name}}}", "b": tru}'
    assert payload_errors("json", template=template, output_names=[]) == [
        "The template is not valid JSON: Expecting value at line 1, column 39."
    ]


def test_json_placeholder_outside_a_string_is_refused():
    errors = payload_errors("json", template='{\n "age": {{{Age}}}\n}', output_names=[])
    assert errors == [
        "The placeholder {{{Age}}} at line 2, column 9 must be inside a JSON string "
        '("…"): values are sent as text.'
    ]


def test_json_escape_before_a_placeholder_and_nan_are_refused():
    assert (
        "Invalid \\escape" in payload_errors("json", template='["\\{{{A}}}"]', output_names=[])[0]
    )
    assert "NaN is not JSON" in payload_errors("json", template='{"a": NaN}', output_names=[])[0]


def test_bad_xml_names_the_problem_with_line_and_column():
    template = "<lead>\n  <email>{{{Email}}}</mail>\n</lead>"
    assert payload_errors("xml", template=template, output_names=[]) == [
        "The template is not well-formed XML: mismatched tag at line 2, column 23."
    ]
    assert "not well-formed" in payload_errors("xml", template="<a>&nbsp;</a>", output_names=[])[0]
    assert payload_errors("xml", template="just text", output_names=[]) != []


@pytest.mark.parametrize(
    "template",
    [
        '<?xml version="1.0"?>\n<!DOCTYPE lead [<!ENTITY e "x">]>\n<lead>&e;</lead>',
        "<!doctype lead><lead/>",
        '<lead><![CDATA[<!ENTITY e "x">]]></lead>',
    ],
)
def test_xml_doctype_and_entities_are_refused(template):
    assert payload_errors("xml", template=template, output_names=[]) == [
        "The template may not hold <!DOCTYPE …> or <!ENTITY …> declarations."
    ]


def test_xml_literal_escapes_and_cdata_next_to_placeholders_are_fine():
    template = "<lead>&amp;lt;&amp;amp;&amp;gt; <![CDATA[&lt;&amp;&gt;]]><e>{{{A}}}</e></lead>"
    assert payload_errors("xml", template=template, output_names=[]) == []


def test_xml_declaring_another_encoding_is_refused():
    template = '<?xml version="1.0" encoding="ISO-8859-1"?><lead>{{{A}}}</lead>'
    assert "declare encoding" in payload_errors("xml", template=template, output_names=[])[0]
    template = "<?xml version='1.0' encoding='utf-8'?><lead>{{{A}}}</lead>"
    assert payload_errors("xml", template=template, output_names=[]) == []


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("<lead><{{{Tag}}}>x</{{{Tag}}}></lead>", "must be in element text or an attribute"),
        ("<lead {{{Attr}}}='1'/>", "must be in element text or an attribute"),
        ("<lead><!-- {{{Tag}}} --></lead>", "must be in element text or an attribute"),
        ("<lead><![CDATA[{{{Tag}}}]]></lead>", "is in a CDATA section"),
        ("<lead><?pi {{{Tag}}}?></lead>", "processing instruction"),
    ],
)
def test_xml_placeholders_where_escaping_cannot_protect_are_refused(template, problem):
    errors = payload_errors("xml", template=template, output_names=[])
    assert len(errors) == 1 and problem in errors[0] and "{{{" in errors[0]


@pytest.mark.parametrize(
    ("fmt", "template", "problem"),
    [
        ("form", "a={{{A}}}&b=hello world", "' ' at line 1, column 18"),
        ("form", "a={{{A}}}&b=café", "'é'"),
        ("query", "a={{{A}}}#top", "'#'"),
        ("query", "a=100%", "'%'"),
        ("query", "?a={{{A}}}", "leading '?'"),
        ("form", "a={{{A}}}&flag", "name=value pairs"),
    ],
)
def test_urlencoded_templates_must_be_encoded_as_written(fmt, template, problem):
    errors = payload_errors(fmt, template=template, output_names=[])
    assert len(errors) == 1 and problem in errors[0]


# --- Properties -------------------------------------------------------------------------

texts = st.text()  # any code point but lone surrogates, as text from the database
column_pairs = st.lists(st.tuples(texts, texts), max_size=8, unique_by=lambda pair: pair[0])


@given(column_pairs)
def test_property_json_columns_round_trip_exactly(pairs):
    assert list(json.loads(payload_from_columns("json", pairs).body).items()) == pairs


@given(column_pairs)
def test_property_form_columns_round_trip_exactly(pairs):
    body = payload_from_columns("form", pairs).body.decode("ascii")
    assert parse_qsl(body, keep_blank_values=True) == pairs


@given(st.lists(texts, max_size=8))
def test_property_xml_columns_always_parse(values):
    pairs = [(f"F{index}", value) for index, value in enumerate(values)]
    body = payload_from_columns("xml", pairs).body
    assert xml_children(body) == [(name, xml_kept(value)) for name, value in pairs]


@given(texts, texts)
def test_property_json_template_round_trips_exactly(a, b):
    template = '{"a": "{{{A}}}", "both": "[{{{A}}}|{{{B}}}]"}'
    assert json.loads(payload_from_template("json", template, {"A": a, "B": b}).body) == {
        "a": a,
        "both": f"[{a}|{b}]",
    }


@given(texts, texts)
def test_property_form_template_round_trips_exactly(a, b):
    body = payload_from_template("form", "a={{{A}}}&b={{{B}}}", {"A": a, "B": b}).body
    assert parse_qsl(body.decode("ascii"), keep_blank_values=True) == [("a", a), ("b", b)]


@given(texts, texts)
def test_property_xml_template_always_parses(a, b):
    body = payload_from_template("xml", "<r a='{{{A}}}'>{{{B}}}<s/>{{{A}}}</r>", {"A": a, "B": b})
    root = parse_xml(body.body)
    assert root.get("a") == xml_kept(a)
    assert (root.text or "") == xml_kept(b)
    assert (root[0].tail or "") == xml_kept(a)


# --- Signing ----------------------------------------------------------------------------


def test_generated_secrets_are_valid_and_distinct():
    secret = signing_secret_generate()
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 32
    assert signing_secret_valid(secret)
    assert secret != signing_secret_generate()


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        base64.b64encode(bytes(32)).decode(),  # no prefix
        "whsec_" + base64.b64encode(bytes(16)).decode(),  # too short
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # too long
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # URL-safe alphabet
        "whsec_not base64 at all!!!!!!!!!!!!!!!!!",
    ],
)
def test_invalid_secrets(secret):
    assert not signing_secret_valid(secret)
    with pytest.raises(ValueError):
        webhook_headers(msg_id="msg_1", timestamp=1, body=b"", secrets=[secret])


def signed(body: bytes, secrets: list[str], msg_id: str = "msg_2x") -> dict[str, str]:
    headers = webhook_headers(msg_id=msg_id, timestamp=int(time.time()), body=body, secrets=secrets)
    assert [name for name, _ in headers] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    return dict(headers)


def test_signature_verifies_with_the_standard_webhooks_library():
    secret = signing_secret_generate()
    body = payload_from_columns("json", list(zip(NAMES, NASTY, strict=True))).body
    headers = signed(body, [secret])
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == VALUES
    # The receiver sees a form body the same way.
    form = payload_from_columns("form", [("email", "ä@example.com")]).body
    Webhook(secret).verify(form, signed(form, [secret]), json_parse=False)


def test_during_rotation_each_secret_verifies_alone():
    new, old = signing_secret_generate(), signing_secret_generate()
    body = b'{"email": "a@example.com"}'
    headers = signed(body, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(new).verify(body, headers) == {"email": "a@example.com"}
    assert Webhook(old).verify(body, headers) == {"email": "a@example.com"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing_secret_generate()).verify(body, headers)


def test_a_tampered_body_id_or_timestamp_fails_verification():
    secret = signing_secret_generate()
    body = b'{"email": "a@example.com"}'
    headers = signed(body, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"email": "b@example.com"}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})
    later = str(int(headers["webhook-timestamp"]) + 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-timestamp": later})


def test_no_secrets_no_signature_headers():
    assert webhook_headers(msg_id="m", timestamp=1, body=b"{}", secrets=[]) == []


def test_signature_matches_the_specification_by_hand():
    import hashlib
    import hmac

    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    headers = dict(webhook_headers(msg_id="m", timestamp=1700000000, body=b"{}", secrets=[secret]))
    expected = base64.b64encode(hmac.digest(key, b"m.1700000000.{}", hashlib.sha256)).decode()
    assert headers == {
        "webhook-id": "m",
        "webhook-timestamp": "1700000000",
        "webhook-signature": f"v1,{expected}",
    }


@pytest.mark.parametrize(
    "arguments",
    [
        {"msg_id": "msg\r\nX-Injected: 1", "timestamp": 1, "secrets": ["s"]},
        {"msg_id": "", "timestamp": 1, "secrets": ["s"]},
        {"msg_id": "m", "timestamp": 1.5, "secrets": ["s"]},
    ],
)
def test_bad_signing_arguments_are_refused(arguments):
    arguments["secrets"] = [signing_secret_generate() for _ in arguments["secrets"]]
    with pytest.raises(ValueError):
        webhook_headers(body=b"", **arguments)


# --- Authentication ---------------------------------------------------------------------


def apply(kind: str, username: str = "", secret: str = "", key_name: str = ""):
    return auth_apply(kind, username=username, secret=secret, key_name=key_name)


def test_basic_decodes_back_to_user_and_password_in_utf8():
    headers, params = apply("basic", username="api-user", secret="pässwörd:with colon €")
    assert params == []
    [(name, value)] = headers
    assert name == "Authorization" and value.startswith("Basic ")
    decoded = base64.b64decode(value.removeprefix("Basic "), validate=True).decode("utf-8")
    assert decoded.partition(":") == ("api-user", ":", "pässwörd:with colon €")


def test_bearer_api_key_header_and_api_key_query():
    assert apply("bearer", secret="eyJhbGciOi.J9-_~+/=") == (
        [("Authorization", "Bearer eyJhbGciOi.J9-_~+/=")],
        [],
    )
    assert apply("api_key_header", secret="k-123", key_name="X-Api-Key") == (
        [("X-Api-Key", "k-123")],
        [],
    )
    headers, params = apply("api_key_query", secret="s&cret=ü #1", key_name="api_key")
    assert headers == [] and params == [("api_key", "s&cret=ü #1")]
    url = "https://example.com/hook?a=1&" + urlencode(params)
    assert parse_qsl(urlsplit(url).query) == [("a", "1"), ("api_key", "s&cret=ü #1")]
    assert apply("none") == ([], [])


@pytest.mark.parametrize(
    ("kind", "fields", "problems"),
    [
        ("basic", {}, {"username", "secret"}),
        ("basic", {"username": "a:b", "secret": "p"}, {"username"}),
        ("basic", {"username": "a", "secret": "p\r\nq"}, {"secret"}),
        ("bearer", {}, {"secret"}),
        ("bearer", {"secret": "has space"}, {"secret"}),
        ("bearer", {"secret": "tok\r\nX-Evil: 1"}, {"secret"}),
        ("api_key_header", {}, {"key_name", "secret"}),
        ("api_key_header", {"key_name": "X Key", "secret": "k"}, {"key_name"}),
        ("api_key_header", {"key_name": "X-Key:", "secret": "k"}, {"key_name"}),
        ("api_key_header", {"key_name": "Content-Type", "secret": "k"}, {"key_name"}),
        ("api_key_header", {"key_name": "webhook-signature", "secret": "k"}, {"key_name"}),
        ("api_key_header", {"key_name": "X-Key", "secret": "ключ"}, {"secret"}),
        ("api_key_query", {}, {"key_name", "secret"}),
        ("api_key_query", {"key_name": "api key", "secret": "k"}, {"key_name"}),
        ("api_key_query", {"key_name": "a=b", "secret": "k"}, {"key_name"}),
        ("magic", {}, {"kind"}),
    ],
)
def test_auth_errors(kind, fields, problems):
    arguments = {"username": "", "secret": "", "key_name": "", **fields}
    errors = auth_errors(kind, **arguments)
    assert set(errors) == problems
    with pytest.raises(ValueError):
        auth_apply(kind, **arguments)


def test_valid_settings_have_no_errors():
    for kind, fields in [
        ("none", {}),
        ("basic", {"username": "ü", "secret": "p ä"}),
        ("bearer", {"secret": "t"}),
        ("api_key_header", {"key_name": "Authorization", "secret": "Key abc"[4:]}),
        ("api_key_query", {"key_name": "api_key", "secret": "any text ü"}),
    ]:
        assert kind in AUTH_KINDS
        assert auth_errors(kind, **{"username": "", "secret": "", "key_name": "", **fields}) == {}


def test_redact_headers_hides_credentials_and_keeps_signatures():
    headers = [
        ("Authorization", "Basic dXNlcjpwYXNz"),
        ("X-Api-Key", "k-123"),
        ("cookie", "session=1"),
        ("Content-Type", "application/json"),
        ("webhook-signature", "v1,abc="),
    ]
    assert redact_headers(headers, secret_header_names={"x-api-key"}) == [
        ("Authorization", REDACTED),
        ("X-Api-Key", REDACTED),
        ("cookie", REDACTED),
        ("Content-Type", "application/json"),
        ("webhook-signature", "v1,abc="),
    ]


def test_redact_url_hides_secret_params_and_passwords_and_keeps_the_rest():
    url = "https://user:pa%40ss@example.com:8443/hook?a=1&API_KEY=s%26cret&b=x+y&token=t#frag"
    assert redact_url(url, secret_params={"api_key", "token"}) == (
        "https://user:[redacted]@example.com:8443/hook"
        "?a=1&API_KEY=[redacted]&b=x+y&token=[redacted]#frag"
    )
    assert redact_url("https://example.com/hook", secret_params={"k"}) == (
        "https://example.com/hook"
    )
    assert redact_url("https://example.com/?k&j=", secret_params={"k", "j"}) == (
        "https://example.com/?k&j=[redacted]"
    )
