from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from referrals.roles import account_manager_create, client_user_create
from tests.factories import make_client
from tests.two_factor import TwoStepClient

PASSWORD = "correct-horse-battery-staple"


_DATABASE_FIXTURES = {"db", "transactional_db", "live_server"}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by markers
def pytest_collection_modifyitems(items):
    """Mark the tests that use the database (a ``django_db`` mark, or a fixture that needs
    one): the SQLite pass of ``.ci/run`` runs these, as the rest holds nothing to compare."""
    for item in items:
        uses = item.get_closest_marker("django_db") or _DATABASE_FIXTURES & set(item.fixturenames)
        if uses:
            item.add_marker(pytest.mark.database)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Users made and logged in by tests hash in microseconds: see tests/hashers.py."""
    with override_settings(PASSWORD_HASHERS=["tests.hashers.OneIterationPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache: SQLite reuses a rolled-back test's primary keys,
    so a count cached under one test's client id would otherwise answer for the next one's."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client() -> TwoStepClient:
    """pytest-django's ``client``, whose ``login``/``force_login`` also pass the second step
    (tests/two_factor.py); tests of the login itself post the login pages instead."""
    return TwoStepClient()


@pytest.fixture
def client_a(db):
    return make_client("alpha", name="Alpha Corp", time_zone="Europe/London")


@pytest.fixture
def client_b(db):
    return make_client("bravo", name="Bravo Corp", time_zone="America/New_York")


@pytest.fixture
def manager(db):
    """An account manager: staff, not confined to a client."""
    return account_manager_create(username="manager", password=PASSWORD)


@pytest.fixture
def user_a(client_a):
    """A client user of client A."""
    return client_user_create(client=client_a, username="alice", password=PASSWORD)


@pytest.fixture
def user_b(client_b):
    return client_user_create(client=client_b, username="bob", password=PASSWORD)


def api_client_for(user) -> APIClient:
    api = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api


@pytest.fixture
def manager_api(manager) -> APIClient:
    return api_client_for(manager)


@pytest.fixture
def api_a(user_a) -> APIClient:
    return api_client_for(user_a)


# Real servers on loopback, started once per session by the first test that asks.
from tests.servers.http_receiver import http_receiver, http_test_pki, https_receiver  # noqa: E402, F401
from tests.servers.sshd import sshd  # noqa: E402, F401
from tests.servers.vsftpd import vsftpd, vsftpd_implicit  # noqa: E402, F401
