"""What the platform relies on in its libraries beyond their documented APIs: one module of
ours per library touches them, and one test here per library checks each name where it
lives, so that an upgrade that moves one fails here, naming what moved and who used it,
rather than as a puzzle somewhere else.

- Django: rokt_platform/django_internals.py
- psycopg: rokt_platform/prepared.py
- kombu: rokt_platform/broker.py
- urllib3: deliveries/transports/http.py
- paramiko: deliveries/transports/sftp.py
"""

from __future__ import annotations

import inspect
from collections import deque

import django
import kombu
import paramiko
import psycopg
import pytest
import urllib3
from django.db import DatabaseError, connection
from django.db.backends.utils import CursorWrapper
from kombu.transport import redis as kombu_redis
from urllib3.connection import HTTPConnection, HTTPSConnection

from deliveries.transports import sftp
from tests.servers.sshd import Sshd, sshd  # noqa: F401


def _has(owner, names: list[str], library: str, user: str) -> None:
    missing = [name for name in names if not hasattr(owner, name)]
    assert not missing, (
        f"{library} no longer has {', '.join(missing)} on {getattr(owner, '__name__', owner)}: "
        f"{user} relies on it"
    )


@pytest.mark.django_db(transaction=True)
def test_django_still_has_what_django_internals_relies_on(monkeypatch):
    user = f"rokt_platform/django_internals.py (Django {django.__version__})"
    connection.ensure_connection()
    _has(connection, ["_prepare_cursor", "close_if_health_check_failed", "wrap_database_errors",
                      "errors_occurred", "health_check_done", "close_if_unusable_or_obsolete"],
         "Django", user)  # fmt: skip

    # A raw cursor handed to _prepare_cursor comes back wrapped as Django wraps its own.
    raw = connection.connection.cursor()
    wrapped = connection._prepare_cursor(raw)
    assert isinstance(wrapped, CursorWrapper) and wrapped.cursor is raw, user
    raw.close()

    # health_check_done set: the next use skips the check; cleared: it checks.
    checks: list[bool] = []
    monkeypatch.setattr(connection, "health_check_enabled", True)
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(True) or True)
    connection.health_check_done = True
    connection.close_if_health_check_failed()
    assert checks == [], f"health_check_done no longer skips the check: {user}"
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    assert checks == [True], f"close_if_health_check_failed no longer checks: {user}"

    # A failed statement sets errors_occurred.
    connection.errors_occurred = False
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_here")
    assert connection.errors_occurred, f"errors_occurred is no longer set on an error: {user}"


@pytest.mark.postgres
@pytest.mark.django_db
def test_psycopg_cursors_still_show_django_the_statement_they_prepared(settings):
    from rokt_platform.prepared import prepared_cursor

    user = f"rokt_platform/prepared.py (psycopg {psycopg.__version__})"
    settings.DATABASE_PREPARED_STATEMENTS = True
    assert "prepare" in inspect.signature(psycopg.Cursor.execute).parameters, user
    statement = "SELECT %s::int + 1"
    with prepared_cursor() as cursor:
        cursor.execute(statement, [41])
        assert cursor.fetchone() == (42,)
        raw = cursor.cursor
    assert connection.connection.prepare_threshold is not None, user
    # Django's query log reads the statement from psycopg's ``Cursor._query``.
    shown = connection.ops.last_executed_query(raw, statement, [41])
    assert shown == statement, f"Django no longer reads the statement from Cursor._query: {user}"


def test_kombu_still_publishes_through_the_calls_broker_overrides():
    user = f"rokt_platform/broker.py (kombu {kombu.__version__})"
    channel = kombu_redis.Channel
    _has(channel, ["_create_client", "conn_or_acquire"], "kombu", user)
    assert list(inspect.signature(channel.conn_or_acquire).parameters) == ["self", "client"], user
    assert list(inspect.signature(channel._create_client).parameters) == [
        "self", "asynchronous",
    ], user  # fmt: skip
    # Publishing, consuming and acknowledging take their client from conn_or_acquire, which
    # is what makes one shared client serve them all.
    for method in ("_put", "_get", "_size"):
        assert "conn_or_acquire" in inspect.getsource(getattr(channel, method)), (
            f"kombu's Redis Channel.{method} no longer uses conn_or_acquire: {user}"
        )
    assert "ack_emulation" in channel.from_transport_options, user


def test_urllib3_still_connects_through_new_conn_to_dns_host():
    user = f"deliveries/transports/http.py (urllib3 {urllib3.__version__})"

    class Refused(Exception):
        pass

    for base in (HTTPConnection, HTTPSConnection):

        class Guarded(base):
            def _new_conn(self):
                raise Refused(self._dns_host)

        # The SSRF guard resolves and connects in _new_conn, which every connect must call.
        with pytest.raises(Refused) as raised:
            Guarded("receiver.example.", 443).connect()
        assert raised.value.args == ("receiver.example.",), (
            f"{base.__name__}._dns_host is no longer the name to resolve: {user}"
        )


def test_paramiko_still_keeps_pipelined_writes_replies_in_reqs(sshd: Sshd):  # noqa: F811
    user = f"deliveries/transports/sftp.py (paramiko {paramiko.__version__})"
    _has(paramiko.SFTPClient, ["_read_response"], "paramiko", user)
    sshd.restart()
    transport = paramiko.Transport((sshd.host, sshd.port))
    try:
        transport.connect(username=sshd.username, password=sshd.password)
        client = paramiko.SFTPClient.from_transport(transport)
        client.chdir(sshd.remote_dir)
        with client.open("internals.part", "wb") as remote:
            remote.set_pipelined(True)
            for _ in range(8):
                remote.write(b"x" * 16_384)
            assert isinstance(remote._reqs, deque) and remote._reqs, (
                f"paramiko no longer keeps a pipelined write's pending reply in _reqs: {user}"
            )
            sftp.pipelined_writes_confirm(client, remote)
            assert not remote._reqs, user
            assert remote.stat().st_size == 8 * 16_384
        client.remove("internals.part")
    finally:
        transport.close()
