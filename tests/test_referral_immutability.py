import pytest
from django.db import IntegrityError, connection, transaction

from referrals.models import Referral
from tests.factories import make_referral


@pytest.mark.django_db
def test_the_orm_refuses_to_change_a_stored_referral(client_a):
    referral = make_referral(client_a, email="before@example.com")
    referral.email = "after@example.com"
    with pytest.raises(TypeError, match="immutable"):
        referral.save()
    with pytest.raises(TypeError, match="immutable"):
        Referral.objects.filter(pk=referral.pk).update(email="after@example.com")
    assert Referral.objects.get(pk=referral.pk).email == "before@example.com"


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_refuses_raw_updates_too(client_a):
    referral = make_referral(client_a, email="before@example.com")
    update = "UPDATE referrals_referral SET email = 'x@example.com' WHERE id = %s"
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(update, [referral.pk])
    assert Referral.objects.get(pk=referral.pk).email == "before@example.com"
