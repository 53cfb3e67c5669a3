"""The HTTP transport against a local receiver: requests, keep-alive, limits, SSRF guard, TLS."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest
import urllib3

from deliveries.transports import http
from deliveries.transports.http import HttpRequest, SsrfRefused, send, ssrf_check
from tests.processes import free_port
from tests.servers.http_receiver import (  # noqa: F401
    LOOPBACK,
    HttpReceiver,
    http_receiver,
    http_test_pki,
    https_receiver,
)

JSON = [("Content-Type", "application/json")]


@pytest.fixture(autouse=True)
def fresh_pools():
    yield
    http.close_pools()


@pytest.fixture
def receiver(http_receiver) -> HttpReceiver:  # noqa: F811
    return http_receiver


@pytest.fixture
def secure(https_receiver) -> HttpReceiver:  # noqa: F811
    """The HTTPS receiver; ``secure.ca_file`` is the CA that signed its certificate."""
    return https_receiver


@pytest.fixture
def connects(monkeypatch) -> list[object]:
    """Every address a socket of this process tries to connect to."""
    seen: list[object] = []
    original = socket.socket.connect

    def connect(self, address):
        seen.append(address)
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


class FakeDns:
    """Names resolved to the addresses a test gives; the rest as usual."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.lookups: list[str] = []  # the faked names looked up, in order

    def __setitem__(self, name: str, addresses: list[str]) -> None:
        self.names[name] = addresses

    def answer(self, host: str, port: int) -> list[tuple]:
        self.lookups.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)) if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in self.names[host]
        ]  # fmt: skip


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDns:
    dns = FakeDns()
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in dns.names:
            return dns.answer(host, port)
        return original(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def post(url: str, body: bytes = b'{"n": 1}', **kwargs) -> HttpRequest:
    return HttpRequest("POST", url, JSON, body, **kwargs)


# Requests and answers


@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
def test_request_reaches_the_receiver_as_given(receiver, method):
    headers = [("Content-Type", "application/json"), ("X-Signature", "v1,abc=="),
               ("x-lower-Case", "Kept As Is")]  # fmt: skip
    body = b"" if method == "GET" else b'{"referral": 42}'
    response = send(
        HttpRequest(method, receiver.url("/hook?client=alpha&x=%20"), headers, body),
        allowed_networks=LOOPBACK,
    )

    assert (response.status, response.body, response.error_class) == (200, b'{"ok": true}', "")
    assert ("Content-Type", "application/json") in response.headers
    assert 0 < response.latency_ms < 1000
    [seen] = receiver.wait_for(1)
    assert (seen.method, seen.path, seen.query, seen.body) == (
        method, "/hook", "client=alpha&x=%20", body
    )  # fmt: skip
    # The caller's headers in order and case, plus only what HTTP/1.1 needs.
    added = [("Host", f"127.0.0.1:{receiver.port}"), ("Accept-Encoding", "identity"),
             ("User-Agent", f"python-urllib3/{urllib3.__version__}")]  # fmt: skip
    if body:
        added.append(("Content-Length", str(len(body))))
    assert [h for h in seen.headers if h in headers] == headers
    assert sorted(h for h in seen.headers if h not in headers) == sorted(added)


def test_empty_post_sends_content_length_zero(receiver):
    assert send(post(receiver.url(), b""), allowed_networks=LOOPBACK).status == 200
    assert receiver.wait_for(1)[0].header("Content-Length") == "0"


def test_keep_alive_reuses_one_connection(receiver):
    for n in range(5):
        assert send(post(receiver.url(), b"%d" % n), allowed_networks=LOOPBACK).status == 200
    assert [r.body for r in receiver.requests] == [b"0", b"1", b"2", b"3", b"4"]
    assert receiver.connections == 1


def test_connections_the_server_ends_are_not_reused(receiver):
    receiver.respond = lambda request: (200, [("Connection", "close")], b"bye")
    assert send(post(receiver.url()), allowed_networks=LOOPBACK).body == b"bye"
    receiver.respond = lambda request: (200, [], b"idle next")
    assert send(post(receiver.url()), allowed_networks=LOOPBACK).body == b"idle next"
    receiver.drop_connections()  # as a server does after its keep-alive timeout
    time.sleep(0.05)
    response = send(post(receiver.url()), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (200, "")
    assert receiver.connections == 3


def test_threads_share_the_pool(receiver):
    results = []

    def worker():
        results.extend(send(post(receiver.url()), allowed_networks=LOOPBACK) for _ in range(20))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == [200] * 120
    assert len(receiver.requests) == 120
    assert receiver.connections <= 6


def test_error_statuses_are_answers(receiver):
    receiver.fail_randomly(0.5, seed=7)
    responses = [send(post(receiver.url()), allowed_networks=LOOPBACK) for _ in range(20)]
    assert {r.status for r in responses} == {200, 500}
    assert {r.error_class for r in responses} == {""}
    assert receiver.connections == 1


def test_redirect_is_not_followed(receiver):
    receiver.redirect("http://169.254.169.254/latest/meta-data/")
    response = send(post(receiver.url()), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (302, "")
    assert ("Location", "http://169.254.169.254/latest/meta-data/") in response.headers
    assert len(receiver.requests) == 1


def test_body_is_cut_at_64_kib_and_the_pool_still_works(receiver):
    big = bytes(range(256)) * 4096  # 1 MiB
    receiver.status(200, [("Content-Type", "application/octet-stream")], big)
    started = time.monotonic()
    response = send(post(receiver.url()), allowed_networks=LOOPBACK)
    assert time.monotonic() - started < 1
    assert (response.status, response.error_class) == (200, "")
    assert response.body == big[: http.BODY_LIMIT]

    receiver.respond = lambda request: (201, [], b"next")
    response = send(post(receiver.url()), allowed_networks=LOOPBACK)
    assert (response.status, response.body) == (201, b"next")
    assert receiver.connections == 2  # the connection with 960 KiB unread was dropped


def test_small_remainder_is_drained_and_the_connection_kept(receiver):
    body = b"z" * (http.BODY_LIMIT + 1000)
    receiver.status(200, [], body)
    for _ in range(3):
        response = send(post(receiver.url()), allowed_networks=LOOPBACK)
        assert (response.status, len(response.body)) == (200, http.BODY_LIMIT)
    assert receiver.connections == 1


# Failures


def test_slow_receiver_times_out_at_total_timeout(receiver):
    receiver.slow(5)
    started = time.monotonic()
    response = send(post(receiver.url(), total_timeout=0.5), allowed_networks=LOOPBACK)
    elapsed = time.monotonic() - started
    assert (response.status, response.error_class) == (None, "timeout")
    assert 0.45 < elapsed < 1.5
    assert 450 < response.latency_ms < 1500
    assert f"127.0.0.1:{receiver.port}" in response.error and "0.5 s" in response.error


def test_total_timeout_bounds_a_trickling_body(receiver):
    # Each piece comes within the read timeout; only the overall deadline stops this, and the
    # read waiting for the second piece (due at 1.4 s) must end at the deadline (1.0 s).
    receiver.drip(b"x" * 10, every=0.7)
    started = time.monotonic()
    response = send(post(receiver.url(), total_timeout=1.0), allowed_networks=LOOPBACK)
    assert 0.95 < time.monotonic() - started < 1.3
    # The status line came: kept, with the part of the body read, and the error.
    assert (response.status, response.error_class, response.body) == (200, "timeout", b"x")


def test_connection_refused():
    port = free_port()
    response = send(post(f"http://127.0.0.1:{port}/hook"), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (None, "connect")
    assert f"127.0.0.1:{port}" in response.error and "refused" in response.error


def test_unknown_host():
    response = send(post("http://nonexistent.invalid/hook"))
    assert (response.status, response.error_class) == (None, "dns")
    assert "nonexistent.invalid:80" in response.error


def test_dns_timeout_is_bounded_by_connect_timeout(monkeypatch):
    original = socket.getaddrinfo

    def stuck(host, *args, **kwargs):
        if host == "stuck.example":
            time.sleep(1)
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    started = time.monotonic()
    response = send(post("http://stuck.example/hook", connect_timeout=0.2))
    assert time.monotonic() - started < 0.8
    assert (response.status, response.error_class) == (None, "dns")
    assert "DNS" in response.error


def test_connection_closed_without_answer_is_protocol(receiver):
    def hang_up(request):
        raise ConnectionAbortedError

    receiver.respond = hang_up
    response = send(post(receiver.url()), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (None, "protocol")
    assert f"127.0.0.1:{receiver.port}" in response.error


def test_requests_no_endpoint_could_take_are_refused_without_repeating_the_url():
    with pytest.raises(ValueError, match="method"):
        send(HttpRequest("DELETE", "https://example.com/", []))
    # The address may carry an API key in its query: the answer never repeats it.
    for url in ("ftp://example.com/?key=k-qz9", "https://example.com:99999/?key=k-qz9"):
        with pytest.raises(ValueError, match="address") as refused:
            send(HttpRequest("POST", url, []))
        assert "k-qz9" not in str(refused.value)
    with pytest.raises(ValueError, match="X-Key must be one line") as refused:
        send(HttpRequest("POST", "http://example.com/", [("X-Key", "k-qz9\r\nX-Evil: 1")]))
    assert "k-qz9" not in str(refused.value)


# SSRF guard

FORBIDDEN = [
    "127.0.0.1", "localhost", "[::1]", "0.0.0.0",  # noqa: S104
    "10.0.0.1", "192.168.1.1", "[fd00::1]", "100.64.0.1",
    "169.254.169.254", "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]",
    # Python 3.11 calls these global: multicast, NAT64 of 169.254.169.254, 6to4 of 127.0.0.1.
    "224.0.0.1", "[ff02::1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]",
]  # fmt: skip


@pytest.mark.parametrize("host", FORBIDDEN)
def test_non_public_addresses_are_refused_without_connecting(receiver, connects, host):
    response = send(post(f"http://{host}:{receiver.port}/hook"))
    assert (response.status, response.error_class) == (None, "ssrf_refused")
    assert "refused" in response.error and f":{receiver.port}" in response.error
    assert connects == []
    assert receiver.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_allowed_networks_open_the_guard(receiver, host):
    response = send(post(f"http://{host}:{receiver.port}/hook"), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (200, "")
    assert receiver.wait_for(1)[0].path == "/hook"


def test_allowing_one_network_does_not_allow_others(receiver):
    allowed = [ipaddress.ip_network("10.0.0.0/8")]
    response = send(post(receiver.url()), allowed_networks=allowed)
    assert response.error_class == "ssrf_refused"


def test_a_name_resolving_to_a_private_address_is_refused(receiver, fake_dns, connects):
    fake_dns["hook.example"] = ["10.1.2.3"]
    response = send(post(f"http://hook.example:{receiver.port}/hook"))
    assert (response.status, response.error_class) == (None, "ssrf_refused")
    assert "10.1.2.3" in response.error and f"hook.example:{receiver.port}" in response.error
    assert connects == []


def test_connects_to_the_vetted_address_and_keeps_the_name(receiver, fake_dns, connects):
    # The name resolves once per connection; only vetted addresses are connected to.
    fake_dns["api.client.example"] = ["169.254.169.254", "127.0.0.1"]
    url = f"http://api.client.example:{receiver.port}/hook"
    for _ in range(2):
        assert send(post(url), allowed_networks=LOOPBACK).status == 200
    assert connects == [("127.0.0.1", receiver.port)]
    assert fake_dns.lookups == ["api.client.example"]
    assert receiver.requests[0].header("Host") == f"api.client.example:{receiver.port}"


def test_ssrf_check():
    assert ssrf_check("127.0.0.1", 80, LOOPBACK) == ["127.0.0.1"]
    assert ssrf_check("::ffff:127.0.0.1", 80, LOOPBACK) == ["127.0.0.1"]
    assert ssrf_check("93.184.215.14", 443) == ["93.184.215.14"]
    with pytest.raises(SsrfRefused, match=r"169\.254\.169\.254"):
        ssrf_check("169.254.169.254", 80)
    with pytest.raises(socket.gaierror):
        ssrf_check("nonexistent.invalid", 80)


# TLS


def test_https_verifies_the_certificate_with_the_ca_file(secure):
    response = send(post(secure.url(), ca_file=secure.ca_file),
                    allowed_networks=LOOPBACK)  # fmt: skip
    assert (response.status, response.error_class) == (200, "")
    response = send(post(secure.url(), ca_file=secure.ca_file),
                    allowed_networks=LOOPBACK)  # fmt: skip
    assert response.status == 200
    assert secure.connections == 1


def test_https_without_the_ca_fails(secure):
    response = send(post(secure.url()), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (None, "tls")
    assert "certificate verify failed" in response.error
    assert secure.requests == []


def test_https_checks_the_certificate_against_the_url_name(secure, fake_dns):
    # The address is right and the CA trusted, but the certificate does not name this host.
    fake_dns["wrong-name.example"] = ["127.0.0.1"]
    fake_dns["localhost"] = ["127.0.0.1"]
    url = f"https://wrong-name.example:{secure.port}/hook"
    response = send(post(url, ca_file=secure.ca_file), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (None, "tls")
    assert "wrong-name.example" in response.error
    # localhost is in the certificate: SNI and the check use the name, not the address.
    url = f"https://localhost:{secure.port}/hook"
    response = send(post(url, ca_file=secure.ca_file), allowed_networks=LOOPBACK)
    assert response.status == 200


def test_missing_ca_file_is_a_tls_error(secure, tmp_path):
    missing = str(tmp_path / "nope.pem")
    response = send(post(secure.url(), ca_file=missing), allowed_networks=LOOPBACK)
    assert (response.status, response.error_class) == (None, "tls")
    assert "nope.pem" in response.error
