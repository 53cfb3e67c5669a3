"""Anonymising a referral: the one change a stored referral allows, through one function;
every other update is still refused, by the ORM and by the database, on both back ends."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from referrals.anonymise import PERSONAL_FIELDS, referrals_anonymise
from referrals.models import Referral
from tests.factories import make_referral

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("referrals.migrations.0008_retention")


def _full(client):
    """A referral with every personal column filled."""
    return make_referral(
        client, title="Dr", birth_date="1990-02-03", age=36, mobile="+447700900123",
        address1="1 High St", address2="Flat 2", city="Leeds", state="West Yorkshire",
        zip_code="LS1 1AA", language="en-GB", browser="Firefox", browser_version="128",
        os="Linux", device="desktop", ip_address="192.0.2.7", user_agent="Firefox",
        ad_text="Win a car", ad_response="yes", audience_id="aud-1", bid_price="1.2500",
        currency="GBP", confirmation_ref="CONF-1", extra={"favourite": "tea"},
    )  # fmt: skip


def test_anonymising_clears_who_the_person_was_and_keeps_the_row_for_counts(client_a):
    referral = _full(client_a)
    other = _full(client_a)
    assert referrals_anonymise([referral.pk]) == 1
    after = Referral.objects.get(pk=referral.pk)
    assert after.anonymised_at is not None
    for name, blank in PERSONAL_FIELDS.items():
        assert getattr(after, name) == blank, name
    # What counts and the offer need stays as it was.
    for name in ("external_id", "client_id", "campaign_id", "created_at", "opted_in_at",
                 "ad_text", "audience_id", "bid_price", "currency"):  # fmt: skip
        assert getattr(after, name) == getattr(referral, name), name
    assert Referral.objects.get(pk=other.pk).email == other.email  # only the one asked for
    assert referrals_anonymise([referral.pk]) == 0  # once


def test_the_trigger_and_the_function_name_the_same_personal_columns():
    columns = {Referral._meta.get_field(name).column for name in PERSONAL_FIELDS}
    assert columns == set(MIGRATION.PERSONAL)
    every = {field.column for field in Referral._meta.concrete_fields}
    assert every == set(MIGRATION.PERSONAL) | set(MIGRATION.KEPT) | {"anonymised_at"}


def test_the_orm_still_refuses_every_other_change(client_a):
    referral = _full(client_a)
    with pytest.raises(TypeError, match="immutable"):
        Referral.objects.filter(pk=referral.pk).update(email="", anonymised_at=referral.created_at)
    referral.email = ""
    with pytest.raises(TypeError, match="immutable"):
        referral.save()


# A changed value for each column; personal columns "changed" to blank go with a change of a
# kept column, or of anonymised_at, in the cases below.
CHANGES = {
    "external_id": "'other'", "ad_text": "'other'", "audience_id": "'other'",
    "audience_name": "'other'", "bid_price": "9", "currency": "'EUR'",
    "opted_in_at": "opted_in_at + interval '1 hour'",
    "created_at": "created_at + interval '1 hour'", "campaign_id": "campaign_id + 1000",
    "client_id": "client_id + 1000", "id": "id + 1000000",
}  # fmt: skip
SQLITE_CHANGES = {
    **CHANGES,
    "opted_in_at": "'2001-01-01 00:00:00'", "created_at": "'2001-01-01 00:00:00'",
}  # fmt: skip


def _blank_sql(column: str) -> str:
    value = PERSONAL_FIELDS[column]
    return {None: "NULL", "": "''"}.get(value, "'{}'") if not isinstance(value, dict) else "'{}'"


ANONYMISE_SQL = ", ".join(f"{c} = {_blank_sql(c)}" for c in PERSONAL_FIELDS)


def _update(sql: str, pk: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE referrals_referral SET {sql} WHERE id = %s", [pk])


def _now_sql() -> str:
    return "CURRENT_TIMESTAMP" if connection.vendor == "postgresql" else "'2030-01-01 00:00:00'"


@pytest.mark.parametrize("column", sorted(CHANGES))
def test_the_database_refuses_anonymising_that_also_changes_a_kept_column(client_a, column):
    referral = _full(client_a)
    changes = SQLITE_CHANGES if connection.vendor == "sqlite" else CHANGES
    sql = f"{ANONYMISE_SQL}, anonymised_at = {_now_sql()}, {column} = {changes[column]}"
    with pytest.raises(DatabaseError, match="immutable"):
        _update(sql, referral.pk)
    assert Referral.objects.get(pk=referral.pk).email == referral.email


@pytest.mark.parametrize("column", sorted(PERSONAL_FIELDS))
def test_the_database_refuses_anonymising_that_leaves_a_personal_column(client_a, column):
    referral = _full(client_a)
    others = ", ".join(f"{c} = {_blank_sql(c)}" for c in PERSONAL_FIELDS if c != column)
    with pytest.raises(DatabaseError, match="immutable"):
        _update(f"{others}, anonymised_at = {_now_sql()}", referral.pk)


def test_the_database_refuses_a_change_without_anonymised_at_and_a_second_anonymising(
    client_a,
):
    referral = _full(client_a)
    with pytest.raises(DatabaseError, match="immutable"):
        _update(ANONYMISE_SQL, referral.pk)  # blanks alone are a change like any other
    with pytest.raises(DatabaseError, match="immutable"):
        _update("email = 'x@example.com'", referral.pk)
    _update(f"{ANONYMISE_SQL}, anonymised_at = {_now_sql()}", referral.pk)  # the one allowed
    with pytest.raises(DatabaseError, match="immutable"):
        _update(f"anonymised_at = {_now_sql()}", referral.pk)  # once, and never undone
    with pytest.raises(DatabaseError, match="immutable"):
        _update("anonymised_at = NULL", referral.pk)
    after = Referral.objects.get(pk=referral.pk)
    assert after.email == "" and after.bid_price == Decimal("1.2500")
    assert isinstance(after.anonymised_at, dt.datetime)
