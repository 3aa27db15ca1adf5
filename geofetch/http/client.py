"""The HTTP client every provider and ``geofetch fetch`` send their requests through."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.response import BaseHTTPResponse

from ..exceptions import ConnectionError, HTTPError, ProviderError, Timeout
from ..redact import redact
from .deadline import DeadlineConnectionPool, DeadlineHTTPSConnectionPool, Ticket, watchdog
from .decoding import ACCEPT_ENCODING, decoder_for
from .errors import DEFAULT_USER_AGENT, error_for_transport, origin_with_port, scrub_chain
from .response import Response

__all__ = ["CA_BUNDLE_VARIABLES", "Exchange", "HTTPClient", "ca_bundle"]

#: Environment variables naming a CA bundle (a file or a directory), first set wins
#: (requests reads the first two, OpenSSL the third); none set: certifi's bundle if
#: certifi is installed, else the system's.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
#: Bytes asked of the socket per read of a body.
CHUNK_BYTES = 64 * 1024
#: Idle connections kept per host; more in flight at once are made and dropped.
POOL_SIZE = 32
#: Hosts whose connections are kept at once (fetch visits many).
HOSTS_KEPT = 32

_POOL_CLASSES = {"http": DeadlineConnectionPool, "https": DeadlineHTTPSConnectionPool}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def ca_bundle() -> str | None:
    """The CA bundle to verify servers with: a variable of :data:`CA_BUNDLE_VARIABLES`,
    else certifi's, else None (the system's default store)."""
    for name in CA_BUNDLE_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


@dataclass(frozen=True)
class _Route:
    """How requests to one origin go: through a pool of this client's (direct), or
    through a proxy's manager (``proxy`` is its URL)."""

    scheme: str
    host: str
    port: int
    proxy: str | None


class HTTPClient:
    """One worker's HTTP client: kept-alive connections, a total deadline per request,
    content decoding, and geofetch's errors.

    ``headers`` are sent with every request (``User-Agent`` defaults to
    :data:`~geofetch.http.DEFAULT_USER_AGENT`; ``Accept-Encoding`` names exactly the
    codings that can be decoded). ``secrets`` are redacted from every error.
    ``verify``: True checks server certificates against :func:`ca_bundle`, a path
    names the bundle (file or directory), False does not check. ``proxies`` maps a
    scheme to a proxy URL; None reads ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``
    from the environment (``urllib.request.getproxies()`` and ``proxy_bypass()``),
    each origin's route decided on its first request.

    Redirects are never followed: a 3xx is an answer (fetch follows them itself,
    hop by hop, so its rate limit sees each). Requests are GETs with ``retries``
    off: the engine owns retries. Safe to share between threads, but made per
    worker (in a provider's ``open()``) and never pickled.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        self.headers = {"User-Agent": DEFAULT_USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
        self.headers.update(headers or {})
        self.secrets = tuple(s for s in secrets if s)
        self._tls = _tls_settings(verify)
        self._proxies = dict(urllib.request.getproxies() if proxies is None else proxies)
        self._bypass = urllib.request.proxy_bypass if proxies is None else (lambda host: False)
        self._manager = self._new_manager(None)
        self._proxy_managers: dict[str, urllib3.PoolManager] = {}
        self._routes: dict[str, _Route] = {}
        self._pools: dict[_Route, HTTPConnectionPool] = {}
        self._timeouts: dict[float, urllib3.Timeout] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> Any:
        raise TypeError("an HTTPClient holds live connections: build one per worker "
                        "(in open()), never pickle it")

    # -- requests -----------------------------------------------------------------

    def get(self, url: str, *, timeout: float, max_bytes: int | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url``: the answer, its body read and decoded, at most ``max_bytes``
        (None: all of it; beyond the cap ``complete`` is False).

        ``timeout`` seconds bound the whole request: connecting, sending, the headers
        and the body together. Any status is an answer; no answer raises
        :class:`~geofetch.exceptions.Timeout`, :class:`~geofetch.exceptions.ConnectionError`
        or :class:`~geofetch.exceptions.HTTPError` (a body in a content coding that
        cannot be decoded: its subclass ``ContentDecodingError``).
        """
        with self.open(url, timeout=timeout, headers=headers) as exchange:
            return exchange.read(max_bytes)

    def open(self, url: str, *, timeout: float, headers: Mapping[str, str] | None = None,
             what: str = "answer") -> Exchange:
        """Send a GET for ``url`` and wait for the answer's status and headers.

        Returns an :class:`Exchange` whose body is still to read (``read()``), within
        the same ``timeout``; close it (or use it as a context manager) either way.
        ``what`` names the body in a timeout's message (``"page not complete within
        2 s"``). Errors as :meth:`get`.
        """
        origin, target = _split(url)
        route = self._routes.get(origin)
        if route is None:
            route = self._route(origin, url)
        sent = self.headers if headers is None else {**self.headers, **headers}
        ticket = watchdog().arm(timeout)
        started = time.perf_counter()
        try:
            if route.proxy is None:
                pool = self._pools.get(route)
                if pool is None or pool.pool is None:  # new, or closed by the manager
                    pool = self._pool(route)
                response = pool.urlopen(
                    "GET", target, headers=sent, retries=False, redirect=False,
                    assert_same_host=False, timeout=self._timeout(timeout),
                    preload_content=False, release_conn=False, decode_content=False)
            else:
                response = self._proxy_managers[route.proxy].urlopen(
                    "GET", origin + target, headers=sent, retries=False, redirect=False,
                    timeout=self._timeout(timeout), preload_content=False,
                    release_conn=False, decode_content=False)
        except Exception as exc:
            fired = watchdog().disarm(ticket)
            if fired:
                scrub_chain(exc, self.secrets)
                raise Timeout(f"no answer within {timeout:g} s") from exc
            raise error_for_transport(exc, timeout=timeout, origin=origin,
                                      secrets=self.secrets) from exc
        except BaseException:
            watchdog().disarm(ticket)
            raise
        ticket.response = response
        return Exchange(url, origin, response, ticket, timeout, started, what, self.secrets)

    def close(self) -> None:
        """Close every kept-alive connection (a request after this opens new ones)."""
        with self._lock:
            managers = [self._manager, *self._proxy_managers.values()]
            self._pools.clear()
        for manager in managers:
            manager.clear()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- routes and pools ------------------------------------------------------------

    def _route(self, origin: str, url: str) -> _Route:
        """Decide, once per origin, whether its requests go through a proxy."""
        parts = urlsplit(origin)
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except (ValueError, KeyError):
            raise HTTPError(redact(f"cannot request {url[:200]!r}: not an http(s) URL "
                                   "with a valid port", self.secrets)) from None
        host = parts.hostname
        if not host:
            raise HTTPError(redact(f"cannot request {url[:200]!r}: no host", self.secrets))
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if proxy and self._bypass(parts.netloc.rpartition("@")[2]):
            proxy = None
        if proxy:
            if urlsplit(proxy).scheme not in ("http", "https"):
                raise ConnectionError(redact(
                    f"the proxy for {origin_with_port(origin)} is {proxy!r}; only http:// "
                    "and https:// proxies are supported", self.secrets))
            with self._lock:
                if proxy not in self._proxy_managers:
                    self._proxy_managers[proxy] = self._new_manager(proxy)
        route = _Route(parts.scheme, host, port, proxy or None)
        self._routes[origin] = route
        return route

    def _pool(self, route: _Route) -> HTTPConnectionPool:
        pool = self._manager.connection_from_host(route.host, route.port, route.scheme)
        self._pools[route] = pool
        return pool

    def _new_manager(self, proxy: str | None) -> urllib3.PoolManager:
        options: dict[str, Any] = {"num_pools": HOSTS_KEPT, "maxsize": POOL_SIZE,
                                   "block": False, **self._tls}
        manager = (urllib3.PoolManager(**options) if proxy is None
                   else urllib3.ProxyManager(proxy, **options))
        manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager

    def _timeout(self, seconds: float) -> urllib3.Timeout:
        """Each connect and each read bounded by the whole timeout too (a backstop)."""
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = urllib3.Timeout(connect=seconds, read=seconds)
        return timeout


class Exchange:
    """A request whose answer's status and headers are in and whose body is not yet
    read; the request's deadline still runs. Made by :meth:`HTTPClient.open`."""

    def __init__(self, url: str, origin: str, response: BaseHTTPResponse, ticket: Ticket,
                 timeout: float, started: float, what: str, secrets: tuple[str, ...]) -> None:
        self.url = url
        self.status = response.status
        self.reason = response.reason or ""
        self.headers = response.headers
        self._origin = origin
        self._response: BaseHTTPResponse | None = response
        self._ticket = ticket
        self._timeout = timeout
        self._started = started
        self._what = what
        self._secrets = secrets

    @property
    def elapsed(self) -> float:
        """Seconds since the request was sent."""
        return time.perf_counter() - self._started

    def read(self, max_bytes: int | None = None, *, truncate: bool = False) -> Response:
        """The answer with its body read and decoded: all of it, or at most ``max_bytes``
        decoded bytes (``complete`` False when there was more).

        Reading stops at the cap and the connection is then dropped; a body whose
        ``Content-Length`` alone says it is over the cap (no content coding) is not
        read at all, unless ``truncate``: then its first ``max_bytes`` are read and
        returned all the same (a robots.txt is parsed up to a size). Raises
        :class:`~geofetch.exceptions.Timeout` past the deadline,
        :class:`~geofetch.exceptions.ContentDecodingError`,
        :class:`~geofetch.exceptions.ConnectionError`.
        """
        response = self._response
        if response is None:
            raise RuntimeError("this answer was already read or closed")
        chunks: list[bytes] = []
        complete = True
        try:
            decoder = decoder_for(self.headers.get("Content-Encoding"))
            declared = self.headers.get("Content-Length", "")
            if (decoder is None and max_bytes is not None and not truncate
                    and declared.isdigit() and int(declared) > max_bytes):
                complete = False
            else:
                complete = self._read_into(chunks, response, decoder, max_bytes)
        except ProviderError:
            self._drop()
            raise
        except Exception as exc:
            fired = self._drop()
            if fired:
                scrub_chain(exc, self._secrets)
                raise self._late() from exc
            raise error_for_transport(exc, timeout=self._timeout, origin=self._origin,
                                      secrets=self._secrets) from exc
        if not complete:
            self._drop()
        elif self._finish():
            raise self._late()
        return Response(self.url, self.status, self.reason, self.headers, b"".join(chunks),
                        complete, time.perf_counter() - self._started)

    def _read_into(self, chunks: list[bytes], response: BaseHTTPResponse, decoder: Any,
                   max_bytes: int | None) -> bool:
        """Read the body into ``chunks``; False if it was cut at ``max_bytes``."""
        ticket = self._ticket
        size = 0
        while True:
            if ticket.expired():
                raise self._late()
            data = response.read1(CHUNK_BYTES, decode_content=False)
            # a known length read to its end needs no second read to learn it
            end = not data or response.length_remaining == 0
            if decoder is not None:
                if data:
                    data = decoder.decode(data, 0 if max_bytes is None else max_bytes - size + 1)
                if end and (max_bytes is None or size + len(data) <= max_bytes):
                    data += decoder.flush()
            if data:
                size += len(data)
                if max_bytes is not None and size > max_bytes:
                    chunks.append(data[: len(data) - (size - max_bytes)])
                    return False
                chunks.append(data)
            if end:
                return True

    def _late(self) -> Timeout:
        return Timeout(f"{self._what} not complete within {self._timeout:g} s")

    def _finish(self) -> bool:
        """The body is read: the connection went back to its pool. True if the
        deadline fired meanwhile (the body may be cut short)."""
        self._response = None
        return watchdog().disarm(self._ticket)

    def _drop(self) -> bool:
        """Drop the connection (its answer is not read to the end); True if fired."""
        response, self._response = self._response, None
        fired = watchdog().disarm(self._ticket)
        if response is not None:
            response.close()
            response.release_conn()  # the pool's slot back, with a closed connection
        return fired

    def close(self) -> None:
        """Drop the connection unless the body was read to the end."""
        if self._response is not None:
            self._drop()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _split(url: str) -> tuple[str, str]:
    """``(scheme://host[:port], /path?query)``: the fragment and any user info
    dropped, scheme and host case-folded."""
    start = url.find("://")
    if start < 0:
        raise HTTPError(f"cannot request {url[:200]!r}: not an absolute http(s) URL")
    start += 3
    cut = len(url)
    for mark in ("/", "?", "#"):
        at = url.find(mark, start)
        if 0 <= at < cut:
            cut = at
    origin, target = url[:cut], url[cut:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    if "@" in origin:  # user info is not sent (nor shown in messages)
        origin = url[:start] + origin.rpartition("@")[2]
    if not origin.islower():
        origin = origin.lower()
    return origin, target


def _tls_settings(verify: bool | str) -> dict[str, Any]:
    """urllib3's certificate options for ``verify`` (see :class:`HTTPClient`)."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    bundle = verify if isinstance(verify, str) else ca_bundle()
    if bundle is None:
        return {"cert_reqs": "CERT_REQUIRED"}
    if os.path.isdir(bundle):
        return {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": bundle}
    return {"cert_reqs": "CERT_REQUIRED", "ca_certs": bundle}
