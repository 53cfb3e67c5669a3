"""Every custom-field kind and rule, rendered by both back ends to the same text."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.core.exceptions import ValidationError

from customfields.engine import Column, compile_columns, standard_columns
from customfields.models import CustomField
from customfields.services import custom_field_save
from tests.customfield_helpers import python_rows, sql_rows
from tests.factories import make_referral

pytestmark = pytest.mark.django_db


def field(client, name, kind, **settings) -> CustomField:
    return custom_field_save(CustomField(client=client, name=name, kind=kind, **settings))


def render(client, *names) -> list[list[str]]:
    """Rows through the Python back end; on PostgreSQL also through SQL, which must agree."""
    compiled = compile_columns(client=client, columns=[Column(n, n) for n in names])
    rows = python_rows(compiled, client)
    from django.db import connection

    if connection.vendor == "postgresql":
        assert sql_rows(compiled, client) == rows
    return rows


def test_value_map_rules_in_order_with_both_defaults(client_a):
    for gender in ["M", "f", "Female", "X", ""]:
        make_referral(client_a, gender=gender)
    field(client_a, "GenderLabel", "value_map", source="gender", rules=[
        {"match": "equals", "value": "M", "output": "Male"},
        {"match": "equals", "value": "F", "output": "Female", "case_sensitive": False},
        {"match": "regex", "value": "^fem", "output": "Female (regex)", "case_sensitive": False},
    ], empty_default="Unknown", no_match="default", no_match_default="Other")  # fmt: skip
    assert render(client_a, "GenderLabel") == [
        ["Male"],
        ["Female"],
        ["Female (regex)"],
        ["Other"],
        ["Unknown"],
    ]


def test_value_map_contains_and_passthrough(client_a):
    for city in ["Greater London", "Leeds", "london town"]:
        make_referral(client_a, city=city)
    field(client_a, "Region", "value_map", source="city", no_match="passthrough", rules=[
        {"match": "contains", "value": "London", "output": "LDN"},
    ])  # fmt: skip
    assert render(client_a, "Region") == [["LDN"], ["Leeds"], ["london town"]]


def test_datetime_pattern_in_the_client_zone_across_the_dst_change(client_a):
    # Europe/London leaves GMT for BST at 01:00 UTC on 2025-03-30.
    for moment in ["2025-03-30T00:59:59+00:00", "2025-03-30T01:00:00+00:00"]:
        make_referral(client_a, opted_in_at=moment)
    field(client_a, "OptIn", "datetime", source="opted_in_at",
          date_pattern="%d/%m/%Y %H:%M:%S %z %a %b %p %I %j")  # fmt: skip
    assert render(client_a, "OptIn") == [
        ["30/03/2025 00:59:59 +0000 Sun Mar AM 12 089"],
        ["30/03/2025 02:00:00 +0100 Sun Mar AM 02 089"],
    ]


def test_datetime_iso_and_excel_and_a_chosen_zone(client_a):
    make_referral(client_a, opted_in_at="2024-07-01T12:00:00+00:00", birth_date="1990-05-17")
    field(client_a, "Iso", "datetime", source="opted_in_at", date_output="iso8601")
    field(client_a, "IsoNY", "datetime", source="opted_in_at", date_output="iso8601",
          time_zone="America/New_York")  # fmt: skip
    field(client_a, "Excel", "datetime", source="opted_in_at", date_output="excel")
    field(client_a, "BirthExcel", "datetime", source="birth_date", date_output="excel")
    field(client_a, "Birth", "datetime", source="birth_date", date_pattern="%B %d, %Y (%A)")
    assert render(client_a, "Iso", "IsoNY", "Excel", "BirthExcel", "Birth") == [[
        "2024-07-01T13:00:00+01:00", "2024-07-01T08:00:00-04:00", "45474.54167", "33010",
        "May 17, 1990 (Thursday)",
    ]]  # fmt: skip


def test_template_with_standard_extra_custom_and_missing_values(client_a):
    make_referral(client_a, first_name="Ada", last_name="Lovelace", extra={"tier": "gold"})
    make_referral(client_a, first_name="", last_name="Hopper", extra={})
    field(client_a, "Upper", "case", source="last_name", case="upper")
    field(
        client_a,
        "Full",
        "template",
        template="{{{First_Name}}} {{{Upper}}} [{{{extra.tier}}}] {{{ extra.missing }}}!",
    )
    assert render(client_a, "Full") == [["Ada LOVELACE [gold] !"], [" HOPPER [] !"]]


def test_constant_case_and_hash(client_a):
    make_referral(client_a, email="  Grace.Hopper@Example.COM ", first_name="mARY-jane o'neil")
    make_referral(client_a, email="", first_name="")
    field(client_a, "Source", "constant", constant="rokt")
    field(client_a, "NiceName", "case", source="first_name", case="title")
    field(client_a, "Sha", "hash", source="email", algorithm="sha256")
    field(client_a, "Md5", "hash", source="email", algorithm="md5")
    normal = b"grace.hopper@example.com"
    assert render(client_a, "Source", "NiceName", "Sha", "Md5") == [
        ["rokt", "Mary-Jane O'Neil", hashlib.sha256(normal).hexdigest(),
         hashlib.md5(normal).hexdigest()],  # noqa: S324 (ad platforms match md5 hashes)
        ["rokt", "", "", ""],
    ]  # fmt: skip


def test_chained_custom_fields(client_a):
    make_referral(client_a, gender="f")
    field(client_a, "G", "value_map", source="gender", rules=[
        {"match": "equals", "value": "F", "output": "female", "case_sensitive": False},
    ])  # fmt: skip
    field(client_a, "GUpper", "case", source="G", case="upper")
    field(client_a, "GHash", "hash", source="GUpper", algorithm="md5")
    assert render(client_a, "GUpper", "GHash") == [
        ["FEMALE", hashlib.md5(b"female").hexdigest()]  # noqa: S324
    ]


def test_standard_columns_render_the_same_in_both_back_ends(client_a):
    make_referral(
        client_a,
        bid_price="1.5",
        age=33,
        ip_address="2001:db8::1",
        birth_date="1990-01-02",
        extra={"n": 1.5, "b": True, "o": {"zz": 1, "a": [1]}},
    )
    make_referral(client_a)  # fmt: skip
    compiled = compile_columns(client=client_a, columns=[
        *standard_columns(), Column("extra.n", "n"), Column("extra.b", "b"),
        Column("extra.o", "o"),
    ])  # fmt: skip
    rows = render_both(compiled, client_a)
    first = dict(zip(compiled.headers, rows[0], strict=True))
    assert first["bid_price"] == "1.5000"
    assert first["ip_address"] == "2001:db8::1"
    assert first["o"] == '{"a": [1], "zz": 1}'
    assert first["b"] == "true"


def render_both(compiled, client):
    rows = python_rows(compiled, client)
    from django.db import connection

    if connection.vendor == "postgresql":
        assert sql_rows(compiled, client) == rows
    return rows


def test_render_referral_matches_the_bulk_rows(client_a):
    referral = make_referral(client_a, opted_in_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    field(client_a, "Iso", "datetime", source="opted_in_at", date_output="iso8601")
    compiled = compile_columns(client=client_a, columns=[*standard_columns(), Column("Iso", "i")])
    assert compiled.render_referral(referral) == python_rows(compiled, client_a)[0]


@pytest.mark.parametrize(("settings", "field_name", "message"), [
    ({"name": "email", "kind": "constant", "constant": "x"}, "name", "standard field"),
    ({"name": "9lives", "kind": "constant", "constant": "x"}, "name", "starting with a letter"),
    ({"name": "A", "kind": "case", "source": "nope", "case": "upper"}, "source", "Unknown field"),
    ({"name": "A", "kind": "case", "source": "extra.", "case": "upper"}, "source", "Name the key"),
    ({"name": "A", "kind": "value_map", "source": "gender",
      "rules": [{"match": "regex", "value": "(a", "output": "x"}]}, "rules", "Missing ')'"),
    ({"name": "A", "kind": "value_map", "source": "gender",
      "rules": [{"match": "regex", "value": "\\d+", "output": "x"}]}, "rules", "Unsupported"),
    ({"name": "A", "kind": "value_map", "source": "gender", "rules": []}, "rules", "at least one"),
    ({"name": "A", "kind": "datetime", "source": "opted_in_at", "date_pattern": "%Q"},
     "date_pattern", "'%Q' is not supported"),
    ({"name": "A", "kind": "datetime", "source": "birth_date", "date_pattern": "%H"},
     "date_pattern", "needs a date-time"),
    ({"name": "A", "kind": "datetime", "source": "email", "date_pattern": "%Y"},
     "source", "needs a date or date-time"),
    ({"name": "A", "kind": "template", "template": "{{{nope}}}"}, "template", "Unknown field"),
    ({"name": "A", "kind": "template", "template": "{{{email"}, "template", "Unclosed"),
    ({"name": "A", "kind": "hash", "source": "email", "algorithm": "sha1"}, "algorithm", "sha256"),
    ({"name": "A", "kind": "case", "source": "A", "case": "upper"}, "source", "cycle"),
])  # fmt: skip
def test_invalid_definitions_are_refused_on_the_offending_field(client_a, settings, field_name,
                                                                message):  # fmt: skip
    with pytest.raises(ValidationError) as raised:
        field(client_a, **settings)
    assert field_name in raised.value.message_dict, raised.value.message_dict
    assert any(message in m for m in raised.value.message_dict[field_name])
    assert not CustomField.objects.exists()


def test_a_cycle_between_two_fields_is_refused_and_nothing_saved(client_a):
    first = field(client_a, "First", "case", source="email", case="upper")
    field(client_a, "Second", "case", source="First", case="lower")
    first.source = "Second"
    with pytest.raises(ValidationError, match="cycle"):
        custom_field_save(first)
    first.refresh_from_db()
    assert first.source == "email"


def test_a_clashing_name_in_another_case_is_refused(client_a, client_b):
    field(client_a, "Gender2", "constant", constant="x")
    with pytest.raises(ValidationError, match="already has"):
        field(client_a, "GENDER2", "constant", constant="y")
    field(client_b, "Gender2", "constant", constant="z")  # another client may use the name


def test_formulae_are_neutralised_in_both_back_ends_when_asked(client_a):
    values = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "Leeds", ""]
    for value in values:
        make_referral(client_a, extra={"v": value})
    field(client_a, "Shout", "template", template="={{{extra.v}}}")
    compiled = compile_columns(
        client=client_a,
        neutralise_formulae=True,
        columns=[Column("extra.v", "v"), Column("Shout", "shout")],
    )
    rows = render_both(compiled, client_a)
    assert [row[0] for row in rows] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tTab", "'\rCR", "Leeds", "",
    ]  # fmt: skip
    assert all(row[1].startswith("'=") for row in rows)
    plain = compile_columns(client=client_a, columns=[Column("extra.v", "v")])
    assert python_rows(plain, client_a)[1] == ["+1"]  # only files for spreadsheets are guarded


@pytest.mark.postgres
@pytest.mark.parametrize("conforming", ["on", "off"])
def test_backslashes_in_definitions_mean_the_same_whatever_the_server_sets(client_a, conforming):
    """Staff-written text is quoted by the platform for COPY; a server (or role) with
    ``standard_conforming_strings`` off must not read its backslashes as escapes."""
    from django.db import connection

    make_referral(client_a, city="C:\\path", last_name="O'Brien\\")
    text = "a\\'b \\\\ \\n end\\"
    field(client_a, "K", "constant", constant=text)
    field(client_a, "T", "template", template="{{{last_name}}}\\{{{city}}}\\'")
    field(client_a, "M", "value_map", source="city",
          rules=[{"match": "equals", "value": "C:\\path", "output": "back\\slash"}])  # fmt: skip
    compiled = compile_columns(client=client_a, columns=[Column(n, n) for n in "KTM"])
    with connection.cursor() as cursor:
        cursor.execute(f"SET standard_conforming_strings = {conforming}")
    try:
        assert (
            sql_rows(compiled, client_a)
            == python_rows(compiled, client_a)
            == [[text, "O'Brien\\\\C:\\path\\'", "back\\slash"]]
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET standard_conforming_strings = on")
