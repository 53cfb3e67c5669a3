import pytest

from rokt_platform.celery import app


@pytest.mark.django_db
def test_healthz_reports_database_and_broker_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_broker_when_it_is_down(client, monkeypatch):
    # A broker URL where nothing listens: the check must fail fast and say which part is down.
    monkeypatch.setitem(app.conf, "broker_write_url", "redis://127.0.0.1:1/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_healthz_shows_the_age_of_the_last_worker_heartbeat(client):
    from deliveries.services import worker_heartbeat_record

    worker_heartbeat_record(hostname="w1@host")
    age = client.get("/healthz").json()["worker_heartbeat_age_seconds"]
    assert 0 <= age < 60
