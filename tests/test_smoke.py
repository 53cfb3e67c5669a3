import pytest

from tests.factories import make_referral


@pytest.mark.django_db
def test_manager_ingests_and_reads_back(manager_api, client_a):
    referral = make_referral(client_a)
    response = manager_api.get("/api/v1/referrals/")
    assert response.status_code == 200
    assert [r["external_id"] for r in response.json()["results"]] == [referral.external_id]
