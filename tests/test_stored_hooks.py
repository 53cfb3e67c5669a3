"""What another app records when a referral is stored (``referrals.hooks``): every way of
storing a referral runs every registered hook, once a referral, in the storing transaction, so
the two commit together or not at all. The deliveries' ledger is such a hook; this one writes
to a table of the test's own.

Transactional tests: the one-statement path runs only outside a caller's transaction."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.ledger import LEDGER_HOOK
from referrals import hooks
from referrals.hooks import StoredHook, stored_hooks
from referrals.models import Referral
from referrals.services import referrals_ingest
from tests.factories import make_client, referral_record

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def seen(monkeypatch):
    """A hook, registered beside the ledger's, that notes each referral it is told of in a
    table (``seen()``: their ids, in order), through ``record`` or through its CTE."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE stored_seen (referral_id bigint, way text)")
    statement_rows: list[tuple] = []

    def record(ids) -> None:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO stored_seen SELECT unnest(%s::bigint[]), 'record'",
                           [list(ids)])  # fmt: skip

    hook = StoredHook(
        name="test.seen",
        record=record,
        cte="INSERT INTO stored_seen SELECT id, %s FROM r RETURNING referral_id, 0, way",
        cte_params=lambda: ["statement"],
        cte_rows=statement_rows.extend,
    )
    monkeypatch.setattr(hooks, "_HOOKS", [*hooks._HOOKS, hook])

    def noted() -> list[tuple[int, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT referral_id, way FROM stored_seen ORDER BY referral_id")
            return cursor.fetchall()

    noted.statement_rows = statement_rows
    yield noted
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE stored_seen")


def test_the_deliveries_register_their_ledger_as_a_hook():
    assert LEDGER_HOOK in stored_hooks()


def test_every_way_of_storing_a_referral_runs_the_hook_once_per_referral(seen):
    client = make_client("alpha")
    [general] = referrals_ingest(records=[referral_record(client, campaign="c1")])  # new campaign
    [one] = referrals_ingest(records=[referral_record(client, campaign="c1")])
    few = referrals_ingest(records=[referral_record(client, campaign="c1") for _ in range(3)])
    many = referrals_ingest(records=[referral_record(client, campaign="c1") for _ in range(12)])
    campaign = Referral.objects.get(pk=one.id).campaign
    fields = {"client": client, "campaign": campaign, "opted_in_at": timezone.now()}
    saved = Referral(external_id="orm-save", **fields)
    saved.save()
    [bulk] = Referral.objects.bulk_create([Referral(external_id="orm-bulk", **fields)])

    statement = [one.id, *(o.id for o in few)]
    recorded = [general.id, *(o.id for o in many), saved.pk, bulk.pk]
    assert seen() == sorted([(pk, "statement") for pk in statement]
                            + [(pk, "record") for pk in recorded])  # fmt: skip
    # What the hook's CTE returned is handed to it once the statement has run.
    assert sorted(seen.statement_rows) == [(pk, 0, "statement") for pk in sorted(statement)]


def test_one_referral_and_every_hook_take_one_statement(seen):
    client = make_client("alpha")
    referrals_ingest(records=[referral_record(client, campaign="c1")])

    with CaptureQueriesContext(connection) as statements:
        [outcome] = referrals_ingest(records=[referral_record(client, campaign="c1")])

    assert len(statements) == 1, [q["sql"] for q in statements]
    assert (outcome.id, "statement") in seen()


@pytest.mark.parametrize("way", ["general path", "save", "bulk_create"])
def test_a_rolled_back_referral_leaves_nothing_of_the_hook(seen, way):
    client = make_client("alpha")
    [first] = referrals_ingest(records=[referral_record(client, campaign="c1")])
    fields = {"client": client, "campaign": Referral.objects.get(pk=first.id).campaign,
              "opted_in_at": timezone.now()}  # fmt: skip
    with pytest.raises(RuntimeError), transaction.atomic():
        if way == "general path":  # in a caller's transaction: never the one statement
            referrals_ingest(records=[referral_record(client, campaign="c1")])
        elif way == "save":
            Referral(external_id="orm-save", **fields).save()
        else:
            Referral.objects.bulk_create([Referral(external_id="orm-bulk", **fields)])
        assert len(seen()) == 2
        raise RuntimeError("the storing transaction fails after the insert")
    assert seen() == [(first.id, "record")]


def test_a_statement_that_cannot_store_every_referral_leaves_nothing_of_the_hook(seen):
    """Its transaction is rolled back and the general path stores the request: each referral
    is told of once, by the path that stored it."""
    client = make_client("alpha")
    [first] = referrals_ingest(records=[referral_record(client, campaign="c1")])
    records = [referral_record(client, campaign="c1"), referral_record(client, campaign="c1"),
               referral_record(client, campaign="c1", external_id=first.external_id)]  # fmt: skip

    outcomes = referrals_ingest(records=records)

    assert [o.status for o in outcomes] == ["created", "created", "duplicate"]
    assert seen() == [(first.id, "record"), (outcomes[0].id, "record"),
                      (outcomes[1].id, "record")]  # fmt: skip
    assert seen.statement_rows == []
