"""Property tests: any referral data, any valid definition, the same text from both back ends,
and nothing ever raises."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from customfields.engine import Column, compile_columns
from customfields.models import CustomField
from customfields.sources import STANDARD_FIELDS, TEXT
from customfields.sqltext import literal
from customfields.transforms.simple import Case
from customfields.validation import custom_field_errors
from referrals.models import Campaign, Client, Referral
from tests.customfield_helpers import python_rows, sql_rows
from tests.factories import make_referral

ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham", "America/St_Johns"]  # fmt: skip
# Any character PostgreSQL text can hold: everything but NUL (and lone surrogates, which
# neither JSON nor UTF-8 can carry).
ANY_CHAR = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT_FIELDS = [name for name, f in STANDARD_FIELDS.items() if f.type == TEXT]
SOURCES = [*STANDARD_FIELDS, "extra.a", "extra.b", "extra.nested", "extra.missing"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(ANY_CHAR, max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(ANY_CHAR, max_size=5), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@st.composite
def referral_data(draw) -> dict:
    data = {}
    for name in TEXT_FIELDS:
        if name in {"client", "campaign", "campaign_name", "external_id"}:
            continue
        size = min(40, Referral._meta.get_field(name).max_length or 40)
        data[name] = draw(st.text(ANY_CHAR, max_size=size))
    data["email"] = draw(st.text(ANY_CHAR, max_size=60))
    data["age"] = draw(st.none() | st.integers(0, 32767))
    data["birth_date"] = draw(st.none() | st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)))
    data["bid_price"] = draw(st.none() | st.decimals(0, Decimal("99999999.9999"), places=4))
    data["ip_address"] = draw(st.none() | st.ip_addresses().map(str))
    moments = st.datetimes(
        dt.datetime(1900, 1, 2), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
    )
    data["opted_in_at"] = draw(moments)
    data["created_at"] = draw(moments)
    data["extra"] = draw(st.fixed_dictionaries({}, optional={
        "a": json_values, "b": st.text(ANY_CHAR, max_size=10),
        "nested": st.dictionaries(st.text(ANY_CHAR, max_size=4), json_values, max_size=3),
    }))  # fmt: skip
    return data


REGEX_ATOMS = ["a", "b", "Z", "9", ".", "[a-c]", "[^x]", "\\.", "\\(", "é", " ", "\\n"]


@st.composite
def regexes(draw) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append("^")
    for _ in range(draw(st.integers(1, 4))):
        atom = draw(st.sampled_from(REGEX_ATOMS))
        if draw(st.booleans()):
            atom = f"({atom}|{draw(st.sampled_from(REGEX_ATOMS))})"
        parts.append(atom + draw(st.sampled_from(["", "*", "+", "?", "{1,2}"])))
    if draw(st.booleans()):
        parts.append("$")
    return "".join(parts)


DATE_PIECES = ["%Y", "%y", "%m", "%d", "%j", "%b", "%B", "%a", "%A", "%H", "%I", "%p", "%M",
               "%S", "%f", "%z", "%%", "-", "/", " ", "T", '"', "\\", "'", "YYYY", "é"]  # fmt: skip


@st.composite
def definitions(draw, client) -> CustomField:
    kind = draw(st.sampled_from(["value_map", "datetime", "template", "constant", "case", "hash"]))
    field = CustomField(client=client, name="Out", kind=kind, source=draw(st.sampled_from(SOURCES)))
    text = st.text(ANY_CHAR, max_size=12)
    if kind == "value_map":
        rules = []
        for _ in range(draw(st.integers(1, 4))):
            match = draw(st.sampled_from(["equals", "contains", "regex"]))
            value = draw(regexes()) if match == "regex" else draw(text)
            rules.append({"match": match, "value": value, "output": draw(text),
                          "case_sensitive": draw(st.booleans())})  # fmt: skip
        field.rules = rules
        field.empty_default = draw(text)
        field.no_match = draw(st.sampled_from(["default", "passthrough"]))
        field.no_match_default = draw(text)
    elif kind == "datetime":
        field.source = draw(st.sampled_from(["opted_in_at", "created_at", "birth_date"]))
        field.date_output = draw(st.sampled_from(["strftime", "iso8601", "excel"]))
        pieces = DATE_PIECES if field.source != "birth_date" else [
            p for p in DATE_PIECES if p not in {"%H", "%I", "%p", "%M", "%S", "%f", "%z"}
        ]
        chosen = draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=8))
        field.date_pattern = "".join(chosen)
        field.time_zone = draw(st.sampled_from(["", *ZONES]))
    elif kind == "template":
        names = st.sampled_from([*SOURCES, "EMAIL", "First_Name"]).map(lambda n: "{{{" + n + "}}}")
        no_braces = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00{}")
        literal = st.text(no_braces, min_size=1, max_size=12)
        field.template = "".join(draw(st.lists(names | literal, min_size=1, max_size=5)))
    elif kind == "constant":
        field.constant = draw(text)
    elif kind == "case":
        field.case = draw(st.sampled_from(["upper", "lower", "title"]))
    else:
        field.algorithm = draw(st.sampled_from(["sha256", "md5"]))
    return field


def _store(client: Client, rows: list[dict]) -> None:
    campaign = Campaign.objects.create(client=client, external_id="c", name="C é")
    Referral.objects.bulk_create([
        Referral(client=client, campaign=campaign, external_id=f"e{i}", **data)
        for i, data in enumerate(rows)
    ])  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_back_ends_give_the_same_text_for_any_data_and_definition(data):
    # Each example runs in a savepoint rolled back at its end: examples never see each other.
    with transaction.atomic():
        zone = data.draw(st.sampled_from(ZONES))
        client = Client.objects.create(name="P", slug="p", time_zone=zone)
        _store(client, data.draw(st.lists(referral_data(), min_size=1, max_size=3)))
        definition = data.draw(definitions(client))
        errors = custom_field_errors(definition, others=[])
        assert not errors, dict(errors)  # the strategies only build valid definitions
        extra_column = Column(data.draw(st.sampled_from(SOURCES)), "std")
        compiled = compile_columns(client=client, custom_fields=[definition],
                                   neutralise_formulae=data.draw(st.booleans()),
                                   columns=[Column("Out", "out"), extra_column])  # fmt: skip
        assert sql_rows(compiled, client) == python_rows(compiled, client)
        transaction.set_rollback(True)


@settings(max_examples=300, deadline=None)
@given(data=referral_data(), definition=st.data())
def test_rendering_any_referral_never_raises(data, definition):
    client = Client(name="P", slug="p", time_zone="Europe/London")
    campaign = Campaign(client=client, external_id="c", name="C")
    referral = Referral(client=client, campaign=campaign, external_id="e", **data)
    field = definition.draw(definitions(client))
    compiled = compile_columns(client=client, custom_fields=[field],
                               columns=[Column("Out", "out"), *[Column(s, s) for s in SOURCES]])
    row = compiled.render_referral(referral)
    assert all(isinstance(value, str) for value in row)


anything = st.text(ANY_CHAR, max_size=30)
wild_rules = st.lists(
    st.fixed_dictionaries({"match": st.sampled_from(["equals", "contains", "regex", "fuzzy"]),
                           "value": anything, "output": anything},
                          optional={"case_sensitive": st.booleans() | st.integers()}),
    max_size=3,
) | st.none() | anything  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(
    kind=st.sampled_from(["value_map", "datetime", "template", "constant", "case", "hash", "x"]),
    source=st.sampled_from([*SOURCES, "Other", "extra.", "nope"]) | anything,
    rules=wild_rules,
    text=anything,
    pattern=st.text(st.sampled_from("%YmdHMSzZqab{}\"'\\ -T"), max_size=12),
    choices=st.fixed_dictionaries({
        "case": st.sampled_from(["upper", "lower", "title"]) | anything,
        "algorithm": st.sampled_from(["sha256", "md5"]) | anything,
        "date_output": st.sampled_from(["strftime", "iso8601", "excel"]) | anything,
        "no_match": st.sampled_from(["default", "passthrough"]) | anything,
        "time_zone": st.sampled_from(["", "Asia/Kolkata"]) | anything,
    }),
    data=referral_data(),
)
def test_no_definition_the_validation_accepts_fails_at_render_time(
    kind, source, rules, text, pattern, choices, data
):
    client = Client(name="P", slug="p", time_zone="Europe/London")
    other = CustomField(client=client, name="Other", kind="constant", constant="o")
    candidate = CustomField(
        client=client, name="Out", kind=kind, source=source, rules=rules, template=text,
        constant=text, date_pattern=pattern, empty_default=text, no_match_default=text,
        **choices,
    )  # fmt: skip
    if custom_field_errors(candidate, others=[other]):
        event("refused")
        return  # refused: nothing to render
    event(f"accepted {kind}")
    campaign = Campaign(client=client, external_id="c", name="C")
    referral = Referral(client=client, campaign=campaign, external_id="e", **data)
    compiled = compile_columns(client=client, custom_fields=[other, candidate],
                               columns=[Column("Out", "out")])  # fmt: skip
    assert isinstance(compiled.render_referral(referral)[0], str)


# Instants next to time-zone transitions of ZONES, where a clock's cached hours must not be
# trusted; rows are drawn close together so that they share cached hours and minutes.
TRANSITIONS = [
    dt.datetime(2025, 3, 30, 1, tzinfo=dt.UTC),  # Europe/London to summer time
    dt.datetime(2025, 10, 26, 1, tzinfo=dt.UTC),  # and back
    dt.datetime(2025, 3, 9, 7, tzinfo=dt.UTC),  # America/New_York
    dt.datetime(2025, 4, 5, 15, tzinfo=dt.UTC),  # Australia/Lord_Howe, half an hour
    dt.datetime(2025, 4, 5, 14, 45, tzinfo=dt.UTC),  # Pacific/Chatham
    dt.datetime(1935, 3, 30, 3, 30, 52, tzinfo=dt.UTC),  # America/St_Johns, seconds offset
    dt.datetime(1941, 10, 1, 0, tzinfo=dt.UTC),  # Asia/Kolkata
]
cluster_bases = st.sampled_from(TRANSITIONS) | st.datetimes(
    dt.datetime(1900, 1, 2), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
near = st.builds(dt.timedelta, seconds=st.integers(-5400, 5400), microseconds=st.integers(0, 2))


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fetched_rows_render_as_the_orm_values_do(data):
    """``rows`` reads date-times as the database's text (customfields.fetch, clock); on any
    database it must give what the ORM's values give through ``render_row``."""
    with transaction.atomic():
        zone = data.draw(st.sampled_from(ZONES))
        client = Client.objects.create(name="P", slug="p", time_zone=zone)
        base = data.draw(cluster_bases)
        rows = data.draw(st.lists(referral_data(), min_size=1, max_size=6))
        for row in rows:
            row["opted_in_at"] = base + data.draw(near)
            row["created_at"] = base + data.draw(near)
        _store(client, rows)
        definition = data.draw(definitions(client))
        assert not custom_field_errors(definition, others=[])
        columns = [Column("Out", "out"), *[Column(source, source) for source in SOURCES]]
        compiled = compile_columns(client=client, custom_fields=[definition], columns=columns,
                                   neutralise_formulae=data.draw(st.booleans()))  # fmt: skip
        queryset = Referral.objects.filter(client=client).order_by("created_at", "id")
        orm = [compiled.render_row(row) for row in queryset.values_list(*compiled.lookups)]
        assert list(compiled.rows(queryset)) == orm
        transaction.set_rollback(True)


@pytest.mark.postgres
@pytest.mark.parametrize(("case", "text", "expected"), [
    ("title", "éLODIE d'ARC", "Élodie D'Arc"),
    ("title", "łUKASZ", "Łukasz"),
    ("title", "sÃO PAULO", "São Paulo"),
    ("title", "mARY-jane o'neil, 1st_floor", "Mary-Jane O'Neil, 1st_Floor"),
    ("title", "ǆemal ΟΔΥΣΣΕΥΣ", "ǅemal Οδυσσευς"),
    ("upper", "straße", "STRASSE"),
    ("upper", "żółć", "ŻÓŁĆ"),
    ("lower", "ŻÓŁĆ ΟΔΥΣΣΕΥΣ", "żółć οδυσσευς"),
])  # fmt: skip
def test_case_changes_follow_unicode_in_both_back_ends(client_a, case, text, expected):
    make_referral(client_a, last_name=text)
    field = CustomField(client=client_a, name="Out", kind="case", source="last_name", case=case)
    compiled = compile_columns(client=client_a, custom_fields=[field], columns=[Column("Out", "o")])
    assert python_rows(compiled, client_a) == sql_rows(compiled, client_a) == [[expected]]


# Characters whose case mappings are special: one to many, title case, final sigma, dotted I.
CASE_CHARS = st.sampled_from(list("ßŉﬁİıΣσςǅǆǄΐ\u0345\u0301 '-_1٣éÉŁżÃ"))


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=500, deadline=None)
@given(text=st.text(ANY_CHAR | CASE_CHARS, max_size=40),
       case=st.sampled_from(["upper", "lower", "title"]))  # fmt: skip
def test_case_changes_agree_between_back_ends_on_any_text(text, case):
    compiled = Case.build(CustomField(kind="case", case=case), None)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {compiled.sql(literal(text))}")
        assert cursor.fetchone()[0] == compiled.python(text)
