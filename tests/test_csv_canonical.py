"""The platform's one CSV (customfields/csvfile.py): the same bytes from PostgreSQL's COPY and
from the Python back end, for any values, delimiter and quoting; and csv readers read it back."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customfields.csvfile import CsvFormat
from customfields.engine import Column, compile_columns
from referrals.models import Campaign, Client, Referral

FORMATS = st.builds(CsvFormat, st.sampled_from([",", ";", "\t", "|"]), st.booleans())
# Characters that make a CSV writer think, and any other (PostgreSQL text holds no NUL).
VALUES = st.text(
    st.sampled_from(',;|\t"\n\r\\. =é') | st.characters(blacklist_categories=("Cs",),
                                                          blacklist_characters="\x00"),
    max_size=6,
)  # fmt: skip
NOW = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
COLUMNS = ["first_name", "last_name", "city", "extra.v"]


@settings(max_examples=500, deadline=None)
@given(fmt=FORMATS, rows=st.integers(1, 4).flatmap(
    lambda width: st.lists(st.lists(VALUES, min_size=width, max_size=width), min_size=1,
                           max_size=5)))  # fmt: skip
def test_lines_read_back_as_the_values(fmt, rows):
    text = "".join(fmt.lines(iter(rows), len(rows[0])))
    assert text == "".join(map(fmt.line, rows))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
    assert list(reader) == rows


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=FORMATS, width=st.integers(1, len(COLUMNS)), guard=st.booleans(),
       rows=st.lists(st.lists(VALUES, min_size=4, max_size=4), min_size=1, max_size=4))  # fmt: skip
def test_copy_and_python_write_the_same_bytes(fmt, width, guard, rows):
    with transaction.atomic():
        client = Client.objects.create(name="P", slug="p", time_zone="UTC")
        campaign = Campaign.objects.create(client=client, external_id="c", name="C")
        Referral.objects.bulk_create([
            Referral(client=client, campaign=campaign, external_id=f"e{n}", opted_in_at=NOW,
                     first_name=first,
                     last_name=last, city=city, extra={"v": v})
            for n, (first, last, city, v) in enumerate(rows)
        ])  # fmt: skip
        compiled = compile_columns(client=client, neutralise_formulae=guard,
                                   columns=[Column(c, c) for c in COLUMNS[:width]])  # fmt: skip
        copied = b"".join(fmt.copy_rows(compiled, where=f"r.client_id = {client.pk}",
                                        order_by="r.id"))  # fmt: skip
        queryset = Referral.objects.filter(client=client).order_by("id")
        written = "".join(fmt.lines(compiled.rows(queryset), width)).encode()
        assert copied == written
        transaction.set_rollback(True)
