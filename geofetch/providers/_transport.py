"""A ``requests.Session`` whose plain GETs take a short path to the socket.

A geocoding worker sends thousands of alike GETs to one host. Through ``requests``
each costs about 1 ms of CPU (settings merged, the URL parsed again, the cookie jar
consulted, a urllib3 pool and retry object per call); ``http.client`` alone, on a
kept-alive connection, about 0.3 ms. Under the GIL that CPU decides how many
threads one process can keep waiting on the network: at 50 ms latency 32 threads
need 640 requests a second, more than the full ``requests`` path can feed from one
core (``docs/bench.md`` has the numbers).

:class:`KeepAliveSession` is still a ``requests.Session``: the ``googlemaps`` client
and the Nominatim provider call it as one and get real ``requests.Response`` objects
and ``requests`` exceptions back. But a GET with no body, cookies, auth, proxy,
client certificate or streaming, and with redirects not followed, goes straight to
a kept-alive ``http.client`` connection, one per thread and host. Every other call
takes the ordinary ``requests`` path, and so does every call while a mocking
library (``responses``, ``requests-mock``) or a mounted adapter of another kind
would see it. Whether a proxy applies to a host is decided on its first request.

What the short path keeps of ``requests``: the session's headers (a call's own
override them, ``None`` removes one), ``params``, ``(connect, read)`` timeouts,
``verify`` (``True``: requests' CA bundle; a file or directory; ``False``), gzip and
deflate bodies, cookies a server sets (later calls then take the ``requests`` path,
which sends them), the session's and the call's response hooks, request lines
logged at DEBUG (logger ``geofetch.http``), and the exception classes
(``ConnectTimeout``, ``ReadTimeout``, ``SSLError``, ``ConnectionError``).
A connection idle for over :data:`IDLE_CHECK_SECONDS` is checked before reuse, as
urllib3 does, so a server's idle timeout costs a reconnect, not an error.
"""

from __future__ import annotations

import datetime
import http.client
import logging
import os
import re
import select
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.hooks import dispatch_hook
from requests.models import RequestEncodingMixin
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy

__all__ = ["IDLE_CHECK_SECONDS", "KeepAliveSession"]

#: A kept-alive connection unused for longer is first checked for a server-side close.
IDLE_CHECK_SECONDS = 1.0
#: What the short path can decode (requests' own default may also name br or zstd).
ACCEPT_ENCODING = "gzip, deflate"

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Request lines at DEBUG, as urllib3 logs them on the requests path (keys masked:
# geofetch.providers._http guards this logger too).
log = logging.getLogger("geofetch.http")

# A request target requests would send unchanged: unreserved and reserved characters
# and upper-case %XX escapes, none of them the escape of an unreserved character
# (requests would unescape it), no fragment. Dot segments are checked apart.
_NORMAL_TARGET = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-F]{2})*")
_UNRESERVED_ESCAPE = re.compile(r"%(?:3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]|2[DE])")
# requests' own encoding of ``params`` (None values dropped, lists repeated).
_encode_params = RequestEncodingMixin._encode_params  # type: ignore[attr-defined]
_NORMAL_ORIGIN = re.compile(r"https?://[a-z0-9.\-]+(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int


class _Connection:
    """A kept-alive ``http.client`` connection, with its read timeout and idle time."""

    __slots__ = ("conn", "idle_since", "read_timeout")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.idle_since = 0.0
        self.read_timeout: float | None = None

    def reset(self) -> None:
        """Close it; the next request opens a new one."""
        self.conn.close()
        self.read_timeout = None


class _HeaderLines:
    """An answer's header lines: what http.client and requests read of an
    ``http.client.HTTPMessage`` (``get``, ``get_all``, ``items``, ...)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        return next((value for key, value in self._items if key.lower() == name), failobj)

    def get_all(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        return [value for key, value in self._items if key.lower() == name] or failobj

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [key for key, _ in self._items]

    def values(self) -> list[str]:
        return [value for _, value in self._items]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    @classmethod
    def parse(cls, lines: list[bytes]) -> _HeaderLines:
        """Header lines as http.client reads them, split as the email parser would."""
        items: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.decode("iso-8859-1")
            if line[:1] in (" ", "\t") and items:  # an obsolete folded continuation
                name, value = items[-1]
                items[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if colon:
                items.append((name, value.lstrip(" \t").rstrip("\r\n")))
        return cls(items)


class _LeanResponse(http.client.HTTPResponse):
    """http.client's response with the header block read without the email parser,
    a sixth of a short request's CPU. ``begin`` is ``HTTPResponse.begin`` with only
    that line changed (CPython 3.10 to 3.13 read headers the same way)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _read_headers(self.fp)  # a 100 Continue's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _HeaderLines.parse(_read_headers(self.fp))
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
                or 100 <= status < 200 or self._method == "HEAD"):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


# http.client's own header-block reader; without it, answers use the stock response.
_read_headers = getattr(http.client, "_read_headers", None)


class _Raw:
    """What ``extract_cookies_to_jar`` reads of a urllib3 response."""

    def __init__(self, answer: http.client.HTTPResponse) -> None:
        self._original_response = answer


class KeepAliveSession(requests.Session):
    """A ``requests.Session`` that sends plain, non-redirecting GETs itself."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self._own_adapters = tuple(self.adapters.values())
        self._local = threading.local()
        self._opened: list[_Connection] = []
        self._opened_lock = threading.Lock()
        self._origins: dict[str, _Origin | None] = {}
        self._ssl_contexts: dict[Any, ssl.SSLContext] = {}

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        """As ``requests.Session.request``; plain GETs take the short path."""
        if (
            method == "GET" and isinstance(url, str) and not allow_redirects
            and not (data or files or cookies or auth or proxies or stream or cert)
            and json is None
            and not (self.cookies or self.auth or self.params or self.cert or self.stream
                     or self.trust_env)
            and self._plain_transport(url)
        ):
            response = self._get(url, params, headers, timeout, hooks,
                                 self.verify if verify is None else verify)
            if response is not None:
                return response
        return super().request(
            method, url, params=params, data=data, headers=headers, cookies=cookies,
            files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
            proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json,
        )

    def _plain_transport(self, url: str) -> bool:
        """True when requests would send ``url`` through this session's own, unpatched
        HTTPAdapter.

        A mounted adapter (retries of its own, another kind), or a mocking library
        that patches the adapter (``responses``) or ``get_adapter`` (``requests-mock``)
        must see the request, so then it takes the ``requests`` path.
        """
        try:
            adapter = self.get_adapter(url)
        except requests.exceptions.InvalidSchema:
            return False
        send = HTTPAdapter.send
        return (
            any(adapter is own for own in self._own_adapters)
            and getattr(send, "__module__", None) == "requests.adapters"
            and getattr(send, "__qualname__", None) == "HTTPAdapter.send"
        )

    def close(self) -> None:
        """Close every kept-alive connection, then the ``requests`` adapters."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.reset()
        super().close()

    # ------------------------------------------------------------------ the short path

    def _get(self, url: str, params: Any, headers: Mapping[str, Any] | None, timeout: Any,
             hooks: Any, verify: Any) -> requests.Response | None:
        """Send the GET on this thread's connection; ``None`` when requests would
        change the URL (then the requests path sends it)."""
        if "#" in url:
            return None
        split = url.find("://") + 3
        ends = [i for i in (url.find("/", split), url.find("?", split)) if i >= 0]
        cut = min(ends) if ends else len(url)
        origin_text, target = url[:cut], url[cut:]
        if not target.startswith("/"):
            target = "/" + target
        if params:
            encoded = _encode_params(params)
            if not isinstance(encoded, str):
                return None
            if encoded:
                path, _, query = target.partition("?")
                target = f"{path}?{query}&{encoded}" if query else f"{path}?{encoded}"
        if not _is_normal(target):
            return None
        origin = self._origin(origin_text)
        if origin is None:
            return None
        url = origin_text + target

        sent: dict[str, Any] = {
            name: value for name, value in self.headers.items() if value is not None}
        if headers:
            lower = {name.lower(): name for name in sent}
            for name, value in headers.items():
                sent.pop(lower.get(name.lower(), name), None)
                if value is not None:
                    sent[name] = value
        connect_timeout, read_timeout = (
            timeout if isinstance(timeout, tuple) else (timeout, timeout))
        prepared = requests.PreparedRequest()
        prepared.method, prepared.url = "GET", url
        prepared.headers = CaseInsensitiveDict(sent)

        started = time.perf_counter()
        connection = self._connection(origin, verify)
        self._send(connection, origin, target, sent, connect_timeout, read_timeout, prepared)
        answer, body = self._receive(connection, origin, target, prepared)

        response = requests.Response()
        response.status_code = answer.status
        response.reason = answer.reason
        response.headers = _headers(answer)
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = _decoded(body, response.headers.get("Content-Encoding"))
        response._content_consumed = True  # type: ignore[attr-defined]
        response.url = url
        response.request = prepared
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        if "Set-Cookie" in response.headers:  # as requests: the answer's, then the session's
            raw = _Raw(answer)
            extract_cookies_to_jar(response.cookies, prepared, raw)  # type: ignore[no-untyped-call]
            extract_cookies_to_jar(self.cookies, prepared, raw)  # type: ignore[no-untyped-call]
        # as requests' merge_hooks: the call's response hooks, else the session's
        chosen = hooks if hooks and hooks.get("response") else self.hooks
        return dispatch_hook(  # type: ignore[no-untyped-call,no-any-return]
            "response", chosen, response, stream=False, timeout=timeout, verify=verify,
            cert=None, proxies=dict(self.proxies))

    def _send(self, connection: _Connection, origin: _Origin, target: str,
              sent: dict[str, Any], connect_timeout: float | None,
              read_timeout: float | None, prepared: requests.PreparedRequest) -> None:
        """Connect if need be, then send the GET; errors as requests raises them."""
        conn = connection.conn
        if conn.sock is None:
            conn.timeout = connect_timeout
            try:
                conn.connect()
            except ssl.SSLError as exc:
                connection.reset()
                raise requests.exceptions.SSLError(_text(exc), request=prepared) from exc
            except TimeoutError as exc:
                connection.reset()
                raise requests.exceptions.ConnectTimeout(
                    f"connection to {origin.host} timed out", request=prepared) from exc
            except OSError as exc:
                connection.reset()
                raise requests.exceptions.ConnectionError(_text(exc), request=prepared) from exc
            connection.read_timeout = connect_timeout
        if connection.read_timeout != read_timeout:
            assert conn.sock is not None
            conn.sock.settimeout(read_timeout)
            connection.read_timeout = read_timeout
        try:
            conn.request("GET", target, headers=sent)
        except ValueError as exc:  # http.client refuses a header name or value
            connection.reset()
            raise requests.exceptions.InvalidHeader(_text(exc), request=prepared) from exc
        except OSError as exc:
            connection.reset()
            raise requests.exceptions.ConnectionError(_text(exc), request=prepared) from exc

    def _receive(self, connection: _Connection, origin: _Origin, target: str,
                 prepared: requests.PreparedRequest) -> tuple[http.client.HTTPResponse, bytes]:
        """The answer and its body; errors as requests raises them."""
        conn = connection.conn
        try:
            answer = conn.getresponse()
        except TimeoutError as exc:
            connection.reset()
            raise requests.exceptions.ReadTimeout(
                f"{origin.host} sent no answer in time", request=prepared) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.reset()
            raise requests.exceptions.ConnectionError(_text(exc), request=prepared) from exc
        try:
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:  # requests: ConnectionError too
            connection.reset()
            raise requests.exceptions.ConnectionError(
                f"{origin.host} broke off its answer: {_text(exc)}", request=prepared) from exc
        log.debug('%s://%s:%s "GET %s HTTP/1.1" %s %s', origin.scheme, origin.host, origin.port,
                  target, answer.status, len(body))
        if answer.will_close:
            connection.reset()
        else:
            connection.idle_since = time.monotonic()
        return answer, body

    def _origin(self, text: str) -> _Origin | None:
        """``scheme://host[:port]`` parsed once; ``None`` if the short path can't take it
        (user info, upper case or non-ASCII host, a proxy applies: requests' business)."""
        if text not in self._origins:
            origin = None
            if _NORMAL_ORIGIN.fullmatch(text) and not select_proxy(text + "/", self.proxies):
                parts = urlsplit(text)
                try:
                    port = parts.port or _DEFAULT_PORTS[parts.scheme]
                except ValueError:  # a port over 65535
                    port = 0
                if port and parts.hostname:
                    origin = _Origin(parts.scheme, parts.hostname, port)
            self._origins[text] = origin
        return self._origins[text]

    def _connection(self, origin: _Origin, verify: Any) -> _Connection:
        """This thread's connection to ``origin``, checked first if it was long idle."""
        key = (origin, verify if origin.scheme == "https" else None)
        connections: dict[Any, _Connection] = self._local.__dict__.setdefault("connections", {})
        connection = connections.get(key)
        if connection is not None:
            sock = connection.conn.sock
            if sock is not None and time.monotonic() - connection.idle_since > IDLE_CHECK_SECONDS:
                if _readable(sock):  # closed by the server (or it sent what nobody asked for)
                    connection.reset()
            return connection
        if origin.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                origin.host, origin.port, context=self._ssl_context(verify))
        else:
            conn = http.client.HTTPConnection(origin.host, origin.port)
        if _read_headers is not None:
            conn.response_class = _LeanResponse
        connection = connections[key] = _Connection(conn)
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def _ssl_context(self, verify: Any) -> ssl.SSLContext:
        context = self._ssl_contexts.get(verify)
        if context is None:
            if verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(verify, str) and os.path.isdir(verify):
                context = ssl.create_default_context(capath=verify)
            else:
                cafile = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
                context = ssl.create_default_context(cafile=cafile)
            self._ssl_contexts[verify] = context
        return context


def _is_normal(target: str) -> bool:
    """True if requests would send the request target ``target`` unchanged."""
    if not _NORMAL_TARGET.fullmatch(target) or _UNRESERVED_ESCAPE.search(target):
        return False
    path = target.partition("?")[0]
    return "/." not in path or all(part not in (".", "..") for part in path.split("/"))


def _headers(answer: http.client.HTTPResponse) -> CaseInsensitiveDict[str]:
    """The answer's headers, a repeated one joined with ", " (as urllib3 does)."""
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.getheaders():
        if name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    return headers


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body without a gzip or deflate ``Content-Encoding``; any other as it came
    (as urllib3 does). Every member of a multi-member gzip body is decoded."""
    coding = (encoding or "").strip().lower()
    if not body or coding not in ("gzip", "x-gzip", "deflate"):
        return body
    try:
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # raw deflate, without the zlib header
                return zlib.decompress(body, -zlib.MAX_WBITS)
        decoded = []
        while body:
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                decoded.append(member.decompress(body) + member.flush())
            except zlib.error:
                if decoded:  # bytes after the last member: ignored, as urllib3 does
                    break
                raise
            body = member.unused_data
        return b"".join(decoded)
    except zlib.error as exc:
        raise requests.exceptions.ContentDecodingError(
            f"cannot decode a {coding} body: {exc}") from exc


def _readable(sock: Any) -> bool:
    """True if ``sock`` has data or an end of stream waiting (poll: any fd number)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
