"""HTTP(S) requests for real-time API deliveries, on urllib3, guarded against SSRF.

What a plain ``urllib3.PoolManager`` does not do for us, and this module does (see PITFALLS,
HTTP delivery):

- The address actually connected to is vetted, when connecting: the name is resolved once,
  addresses that are not public (loopback, private, link-local with the cloud metadata service,
  CGNAT, multicast, reserved, ...) are dropped unless an allowed network holds them, and the
  socket connects to a vetted address itself. DNS cannot answer one thing to the check and
  another to the connect. The Host header, SNI and the certificate check keep the URL's name.
- Redirects are never followed (a 3xx is the answer) and nothing is retried.
- ``total_timeout`` bounds the exchange, not each socket read; at most ``BODY_LIMIT`` bytes of
  the answer are read.
- Every failure of the exchange is an ``HttpResponse`` with an ``error_class``, never an
  exception; a request no endpoint could take (the sender's settings) raises ``ValueError``.

Connections are kept alive in pools cached per (scheme, host, port, allowed networks, CA file),
so a send to a known endpoint costs one request on an open socket. No proxy from the
environment is used: a proxy would connect to addresses nobody vetted.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException

from urllib3 import HTTPConnectionPool, HTTPHeaderDict, HTTPSConnectionPool, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util import parse_url
from urllib3.util.connection import allowed_gai_family, create_connection

from deliveries.setting_patterns import HEADER_NAME

BODY_LIMIT = 65536
# Reading this much past the limit (and no more) leaves the connection reusable; dropping the
# connection is cheaper than reading a large remainder.
DRAIN_LIMIT = 65536
# Connections kept per endpoint: as many as threads of one process sending to it at once.
POOL_MAXSIZE = 16
MAX_POOLS = 256
METHODS = frozenset({"GET", "POST", "PUT"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits, 6to4 in bits 16-48: that IPv4
# address is where the packets end up, so it is vetted too.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class HttpRequest:
    method: str  # POST, PUT or GET
    url: str  # http(s)://..., query string included
    headers: list[tuple[str, str]]
    body: bytes = b""
    connect_timeout: float = 5.0  # resolving the name and connecting (TLS handshake included)
    total_timeout: float = 15.0  # the whole exchange, from connecting to the end of the body
    # HTTPS: a PEM file of CAs trusted besides the system's (a private CA, tests).
    ca_file: str = ""


@dataclass(frozen=True)
class HttpResponse:
    # None when no response came; kept when the status line came but the body then failed
    # (``error_class`` says so): the endpoint did answer.
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes  # at most the first BODY_LIMIT bytes, as sent (no Content-Encoding decoding)
    latency_ms: float  # from just before connecting/sending to the end of reading
    error_class: str = ""  # "", "ssrf_refused", "dns", "connect", "timeout", "tls", "protocol"
    error: str = ""  # "host:port: what went wrong"


class SsrfRefused(Exception):
    """The host has no address that may be connected to."""


def send(request: HttpRequest, *, allowed_networks: Sequence[Network] = ()) -> HttpResponse:
    """Make ``request`` once, on a kept-alive connection when there is one.

    Raises ``ValueError`` only for a request no endpoint could take (method, URL, header
    syntax): the sender's settings are wrong, not the endpoint. The URL and the headers may
    carry keys: no message ever repeats them.
    """
    if request.method not in METHODS:
        raise ValueError(f"unsupported method {request.method!r}")
    for name, value in request.headers:
        problem = header_problem(name, value)
        if problem:
            raise ValueError(problem)
    problem = address_problem(request.url)
    if problem:
        raise ValueError(problem)
    url = parse_url(request.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    where = f"{url.host}:{port}"
    timeout = Timeout(
        connect=request.connect_timeout, read=request.total_timeout, total=request.total_timeout
    )
    status, headers, body = None, [], bytearray()
    started = time.monotonic()
    deadline = started + request.total_timeout
    try:
        pool = _pool(url.scheme, url.host, port, frozenset(allowed_networks), request.ca_file)
        response = pool.urlopen(
            request.method, url.request_uri, body=request.body or None,
            headers=HTTPHeaderDict(request.headers), retries=False, redirect=False,
            assert_same_host=False, timeout=timeout, preload_content=False,
            decode_content=False,
        )  # fmt: skip
        status, headers = response.status, list(response.headers.iteritems())
        _read_body(response, deadline, body)
    except (SsrfRefused, HTTPError, HTTPException, OSError) as exc:
        error_class, error = _classify(exc, where, request)
    except ValueError:  # http.client's message repeats the header's value
        raise ValueError("a header's name or value cannot be sent as written") from None
    else:
        error_class, error = "", ""
    return HttpResponse(
        status=status, headers=headers, body=bytes(body),
        latency_ms=(time.monotonic() - started) * 1000, error_class=error_class, error=error,
    )  # fmt: skip


def address_problem(url: str) -> str | None:
    """Why ``send`` cannot use ``url``, or None; the settings' validation asks the same. The
    URL may carry an API key in its query: no message ever repeats it."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        return "This address cannot be read: check the host name and the port (1 to 65535)."
    if parts.scheme not in ("http", "https") or not parts.host:
        return "Give the full address, starting with https:// (or http://)."
    if parts.port == 0:  # parse_url takes 0 to 65535; nothing listens on 0
        return "A port is 1 to 65535."
    return None


def header_problem(name: str, value: str) -> str | None:
    """Why a header cannot go on the wire, or None: its name an RFC 9110 token, its value one
    line of Latin-1 (what ``http.client`` encodes it as; anything else raises deep inside).
    ``send`` refuses such a request, and the settings' validation asks the same question."""
    if not HEADER_NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid header name: letters, digits and - _ . ! # $ % & ' * + "
            "^ ` | ~, no spaces."
        )
    if "\r" in value or "\n" in value:
        return f"The value of {name} must be one line."
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return (
            f"The value of {name} holds characters a header cannot carry (Latin-1 only): "
            "percent-encode them, or send the value in the body."
        )
    return None


def ssrf_check(
    host: str, port: int, allowed_networks: Iterable[Network] = (), *,
    timeout: float | None = None,
) -> list[str]:  # fmt: skip
    """The addresses of ``host`` that may be connected to; ``SsrfRefused`` when there is none.

    A public address may; any other only inside one of ``allowed_networks``. Raises
    ``socket.gaierror`` when the name does not resolve, ``TimeoutError`` when resolving takes
    longer than ``timeout`` seconds.
    """
    allowed = tuple(allowed_networks)
    vetted, refused = [], []
    for ip in _resolve(host, port, timeout):
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped  # ::ffff:a.b.c.d is a.b.c.d on the wire: vet and use that
        found = vetted if _permitted(ip, allowed) else refused
        if str(ip) not in found:
            found.append(str(ip))
    if not vetted:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise SsrfRefused(
            f"{where}: refused to connect to {', '.join(refused)}: not a public address,"
            " and in none of the endpoint's allowed networks"
        )
    return vetted


def close_pools() -> None:
    """Close every kept-alive connection (tests; a process that stops sending)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _permitted(ip: Address, allowed: tuple[Network, ...]) -> bool:
    if any(ip in network for network in allowed):
        return True
    # ipaddress alone is not enough on Python 3.11: it calls multicast, ::ffff:127.0.0.1 and
    # 64:ff9b::a00:1 (NAT64 for 10.0.0.1) global.
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 6:
        embedded = ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        )
        return embedded is None or _permitted(embedded, allowed)
    return True


# getaddrinfo cannot be given a timeout: it runs here, and the caller waits only so long.
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http-resolve")


def _resolve(host: str, port: int, timeout: float | None) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]  # a literal address: nothing to look up
    except ValueError:
        pass
    family = allowed_gai_family()  # no IPv6 answers on a host without IPv6
    lookup = _resolver.submit(socket.getaddrinfo, host, port, family, socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout)
    except TimeoutError:
        raise TimeoutError(f"no answer from DNS within {timeout:g} s") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class _GuardedConnection:
    """Connects to a vetted address of ``host``, never to whatever the name resolves to later."""

    def __init__(self, *args, allowed_networks: frozenset[Network] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed_networks = allowed_networks

    def _new_conn(self) -> socket.socket:
        # urllib3 resolves and connects here (for HTTP and for HTTPS, whose TLS handshake then
        # checks the certificate against ``self.host``). Errors are raised as urllib3 raises
        # them, so its pool handles them the same. ``self.timeout`` is the connect timeout.
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            addresses = ssrf_check(self._dns_host, self.port, self.allowed_networks,
                                   timeout=timeout)  # fmt: skip
        except OSError as exc:  # socket.gaierror, TimeoutError
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError = TimeoutError()
        for address in addresses:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                # A literal address: urllib3's create_connection looks nothing up.
                return create_connection(
                    (address, self.port), remaining, source_address=self.source_address,
                    socket_options=self.socket_options,
                )  # fmt: skip
            except OSError as exc:
                error = exc
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"no connection within {timeout:g} s") from error
        raise NewConnectionError(self, f"cannot connect: {error}") from error


class _HttpConnection(_GuardedConnection, HTTPConnection):
    pass


class _HttpsConnection(_GuardedConnection, HTTPSConnection):
    pass


class _HttpPool(HTTPConnectionPool):
    ConnectionCls = _HttpConnection


class _HttpsPool(HTTPSConnectionPool):
    ConnectionCls = _HttpsConnection


_pools: OrderedDict[tuple, HTTPConnectionPool] = OrderedDict()  # least recently used first
_pools_lock = threading.Lock()


def _pool(
    scheme: str, host: str, port: int, allowed: frozenset[Network], ca_file: str
) -> HTTPConnectionPool:
    key = (scheme, host.lower(), port, allowed, ca_file)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None:
            _pools.move_to_end(key)
            return pool
        kwargs = {"maxsize": POOL_MAXSIZE, "block": False, "retries": False,
                  "allowed_networks": allowed}  # fmt: skip
        if scheme == "https":
            pool = _HttpsPool(host, port, ssl_context=_ssl_context(ca_file), **kwargs)
        else:
            pool = _HttpPool(host, port, **kwargs)
        _pools[key] = pool
        evicted = _pools.popitem(last=False)[1] if len(_pools) > MAX_POOLS else None
    if evicted is not None:
        evicted.close()
    return pool


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    # One context per pool: urllib3 would otherwise load the system CAs for every connection.
    context = ssl.create_default_context()  # system CAs, TLS >= 1.2, host name checked
    if ca_file:
        try:
            context.load_verify_locations(ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SSLError(f"cannot load CA file {ca_file!r}: {exc}") from exc
    return context


def _forget_pools_after_fork() -> None:
    # A forked child (Celery prefork) must not share the parent's sockets or resolver threads.
    global _resolver
    _pools.clear()
    _resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http-resolve")


os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _read_body(response: BaseHTTPResponse, deadline: float, body: bytearray) -> None:
    """Read up to ``BODY_LIMIT`` bytes into ``body`` by ``deadline``, then give the connection
    back to the pool: reusable when the response was read to its end, else closed (unread bytes
    would be taken for the next response)."""
    complete = False
    try:
        while len(body) < BODY_LIMIT:
            chunk = _read1(response, BODY_LIMIT - len(body), deadline)
            if not chunk:
                complete = True
                break
            body += chunk
        else:
            complete = _drain(response, deadline)
    finally:
        if not complete:
            response.close()
        response.release_conn()


def _drain(response: BaseHTTPResponse, deadline: float) -> bool:
    """Read and discard a small remainder; False when more than ``DRAIN_LIMIT`` is left."""
    left = response.length_remaining  # None for a chunked body
    if left is not None and left > DRAIN_LIMIT:
        return False
    drained = 0
    try:
        while drained <= DRAIN_LIMIT:
            chunk = _read1(response, DRAIN_LIMIT, deadline)
            if not chunk:
                return True
            drained += len(chunk)
    except (HTTPError, HTTPException, OSError):
        pass  # the body we keep is complete: a failure past it only costs the connection
    return False


def _read1(response: BaseHTTPResponse, amount: int, deadline: float) -> bytes:
    # urllib3's read timeout bounds each socket read; this bounds their sum by the deadline.
    # read1 makes at most one read, so no read waits past it.
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ReadTimeoutError(None, None, "total_timeout reached")
    conn = response.connection  # None once urllib3 has released it, at the end of the body
    if conn is not None and conn.sock is not None:
        conn.sock.settimeout(remaining)
    return response.read1(amount)


def _classify(exc: Exception, where: str, request: HttpRequest) -> tuple[str, str]:
    if isinstance(exc, SsrfRefused):
        return "ssrf_refused", str(exc)
    if isinstance(exc, NameResolutionError):
        return "dns", f"{where}: the name does not resolve ({exc.__cause__})"
    # Before ConnectTimeoutError: urllib3 derives NewConnectionError from it.
    if isinstance(exc, NewConnectionError):
        return "connect", f"{where}: {exc.__cause__ or exc}"
    if isinstance(exc, ConnectTimeoutError):
        return "timeout", f"{where}: no connection within {request.connect_timeout:g} s"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return "timeout", f"{where}: no complete answer within {request.total_timeout:g} s"
    if isinstance(exc, SSLError | ssl.SSLError):
        return "tls", f"{where}: TLS failed: {_reason(exc)}"
    return "protocol", f"{where}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """The innermost message: urllib3 wraps errors as ``ProtocolError(text, OSError(...))``."""
    inner = exc.args[-1] if exc.args and isinstance(exc.args[-1], BaseException) else None
    if inner is None:
        return str(exc) or type(exc).__name__
    prefix = f"{exc.args[0]}: " if len(exc.args) > 1 and isinstance(exc.args[0], str) else ""
    return prefix + _reason(inner)
