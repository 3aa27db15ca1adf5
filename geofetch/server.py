"""The local Google- and Nominatim-compatible geocoding server (``geofetch serve``).

It answers Google's ``GET /maps/api/geocode/json?address=`` and Nominatim's
``GET /search?q=&format=json`` from the offline gazetteer, on loopback, so demos,
tests and benchmarks run without keys or network.

Design: one asyncio event loop serves every connection through a small
hand-written HTTP/1.1 protocol (:class:`_HttpProtocol`, an ``asyncio.Protocol``:
no thread per connection and no task per request). A request's answer is decided
the moment it arrives, so counters, the seeded failure draws and the rate limit
follow arrival order (which is what makes ``seed`` reproducible), and it is
written ``latency`` seconds after it arrived by ``loop.call_at``. A slow request holds a
timer, not a thread, so thousands can be in flight at once::

    client ──TCP──▶ _HttpProtocol.data_received ──parse──▶ _App.handle(request)
                                                              │ stats, seeded rng,
                                                              │ rate bucket, gazetteer
    client ◀──TCP── transport.write ◀── loop.call_at(arrival + latency)◀┘

Each connection answers its requests one at a time, in order (keep-alive and
pipelining both work); concurrency comes from many connections, as with any
HTTP/1.1 client pool. Gazetteer lookups run on the loop and their encoded answers
are memoised: an exact match takes well under a millisecond, a fuzzy one a few
milliseconds, once; a repeated query costs neither lookup nor JSON encoding.

The library's ``LocalServer`` writes the per-second counts to its ``log`` stream
(if given) on stop; the command line always writes them to stderr on exit.

:class:`LocalServer` runs that loop in a background thread of the current process
(the default) or as ``python -m geofetch serve --port 0`` in a child process
(``subprocess=True``), so a benchmark's client does not share the server's GIL.
Either way the counters are the same and are also served as JSON at
``GET /_geofetch/stats`` (``GET``/``POST /_geofetch/reset`` zeroes them); the
``/_geofetch/`` endpoints are never counted, delayed, failed or rate limited.

The configured key is compared, never logged or printed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hmac
import http
import http.client
import json
import math
import os
import queue
import random
import re
import signal
import subprocess as _subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, unquote

from ._version import __version__
from .exceptions import UsageError

__all__ = ["GOOGLE_PATH", "NOMINATIM_PATH", "LocalServer", "ServerConfig", "serve"]

GOOGLE_PATH = "/maps/api/geocode/json"
NOMINATIM_PATH = "/search"
STATS_PATH = "/_geofetch/stats"
RESET_PATH = "/_geofetch/reset"
KEY_ENV = "GEOFETCH_SERVE_KEY"
# Set by LocalServer(subprocess=True): the child stops when this parent is gone.
PARENT_ENV = "GEOFETCH_SERVE_PARENT_PID"

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_LISTEN_BACKLOG = 2048
# asyncio rounds epoll's wait up to the next whole millisecond, so a timer fires
# 0.5 ms late on average from the rounding alone (measured here: 1.0 ms late in all).
# Aiming half a millisecond early cancels the rounding: answers then leave 0.5 ms
# after their deadline on average, none more than about 0.5 ms before it.
_TIMER_CENTRE = 0.0005
_JSON = "application/json; charset=UTF-8"
_SERVER = f"geofetch/{__version__}"
_ANSWER_CACHE_SIZE = 100_000
_MIN_POPULATION = 15000
_LISTENING = re.compile(r"listening on (http://\S+)")

_GOOGLE_MESSAGES = {
    "INVALID_REQUEST": (
        "Invalid request. Missing the 'address', 'components', 'latlng' or 'place_id' parameter."
    ),
    "MISSING_KEY": (
        "You must use an API key to authenticate each request to Google Maps Platform APIs. "
        "For additional information, please refer to http://g.co/dev/maps-no-account"
    ),
    "BAD_KEY": "The provided API key is invalid. ",
    "OVER_QUERY_LIMIT": "You have exceeded your rate-limit for this API.",
    "UNKNOWN_ERROR": "Server error injected by the geofetch local server (fail_rate).",
}
_NOMINATIM_FORMATS = ("json", "jsonv2")
_LICENCE = "Data © GeoNames contributors, CC BY 4.0 (geofetch local server)"


class PlaceLike(Protocol):
    """What the server reads from a gazetteer match (``geofetch.providers.offline.Place``)."""

    @property
    def name(self) -> str: ...

    @property
    def lat(self) -> float: ...

    @property
    def lng(self) -> float: ...

    @property
    def country_code(self) -> str: ...

    @property
    def country(self) -> str: ...

    @property
    def admin1(self) -> str: ...

    @property
    def admin1_name(self) -> str: ...

    @property
    def population(self) -> int: ...

    @property
    def geonameid(self) -> int: ...

    @property
    def formatted_address(self) -> str: ...


class Lookup(Protocol):
    """A gazetteer: ``lookup(query)`` returns the best match or ``None``."""

    def lookup(self, query: str) -> PlaceLike | None: ...


def _default_gazetteer() -> Lookup:
    from .providers.offline import Gazetteer

    return Gazetteer.load(min_population=_MIN_POPULATION)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ServerConfig:
    """How the server behaves.

    ``latency_seconds`` is added to every API request; ``fail_rate`` (0 to 1) is the
    fraction answered with HTTP 500, drawn from ``random.Random(seed)`` in arrival
    order; ``rate_limit`` is requests per second (``None``: unlimited; a token bucket
    of one second's worth, see :class:`_TokenBucket`), past which Google gets
    ``OVER_QUERY_LIMIT`` and Nominatim HTTP 429; ``key`` (``None``: any)
    is the API key Google requests must carry.
    """

    latency_seconds: float = 0.0
    fail_rate: float = 0.0
    rate_limit: float | None = None
    key: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.latency_seconds) or self.latency_seconds < 0:
            raise UsageError(f"latency must be 0 or more seconds, not {self.latency_seconds}")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise UsageError(f"fail rate must be between 0 and 1, not {self.fail_rate}")
        if self.rate_limit is not None and (
            not math.isfinite(self.rate_limit) or self.rate_limit <= 0
        ):
            raise UsageError(
                f"rate limit must be a positive number of requests per second, "
                f"not {self.rate_limit}"
            )

    def __repr__(self) -> str:  # never show the key
        key = "None" if self.key is None else "'***'"
        return (
            f"ServerConfig(latency_seconds={self.latency_seconds!r}, "
            f"fail_rate={self.fail_rate!r}, rate_limit={self.rate_limit!r}, "
            f"key={key}, seed={self.seed!r})"
        )


# ---------------------------------------------------------------------------- stats


class _Stats:
    """Request counters, written by the event loop and read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.start = time.monotonic()
            self.total = 0
            self.per_query: Counter[str] = Counter()
            self.arrivals: list[float] = []
            self.per_second: Counter[int] = Counter()
            self.max_in_flight = self.in_flight

    def arrive(self, now: float, query: str | None) -> None:
        """Count one API request arriving at ``now``, now in flight."""
        with self._lock:
            self.total += 1
            self.arrivals.append(now)
            self.per_second[int(now - self.start)] += 1
            if query is not None:
                self.per_query[query] += 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight

    def leave(self) -> None:
        """One request was answered (or its connection lost)."""
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        """A copy: total, per_query, arrivals, per_second, max_in_flight, in_flight."""
        with self._lock:
            return {
                "total": self.total,
                "per_query": Counter(self.per_query),
                "arrivals": list(self.arrivals),
                "per_second": dict(sorted(self.per_second.items())),
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
            }


def format_per_second(stats: dict[str, Any]) -> str:
    """The exit log: a total line, then one line per second that saw requests."""
    per_second: dict[int, int] = stats["per_second"]
    span = (max(per_second) + 1) if per_second else 0
    lines = [
        f"geofetch serve: {stats['total']} requests over {span} s, "
        f"at most {stats['max_in_flight']} in flight"
    ]
    lines += [f"geofetch serve:   second {s:>5}: {n} requests" for s, n in per_second.items()]
    return "\n".join(lines) + "\n"


class _TokenBucket:
    """Admits ``rate`` requests per second: a token bucket holding one second's worth.

    The bucket holds ``max(1, rate)`` tokens, starts full and refills at ``rate``
    per second; each admitted request takes one. So a burst of ``rate`` requests
    passes, then ``rate`` per second. A client paced at ``rate`` (geofetch's GCRA
    gate) is never refused, however its requests jitter on the way, whereas a
    strict one-second sliding window would refuse it whenever one request is a
    little late and the one a second after it is on time. Refused requests take no
    token, so a client that backs off gets through again. Exact per-window counts
    are in the stats (``arrivals``) for tests that need them.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last: float | None = None

    def admit(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0 - 1e-9:  # float error must not refuse an on-time request
            self._tokens -= 1.0
            return True
        return False


# ------------------------------------------------------------------- HTTP messages


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    keep_alive: bool


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    counted: bool = False  # an API request: in flight until written
    close: bool = False


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_date_cache: list[Any] = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return str(_date_cache[1])


def _encode(response: _Response, keep_alive: bool, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Date: {_http_date()}",
        f"Server: {_SERVER}",
        f"Content-Type: {_JSON}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_response(status: int, payload: Any, **kwargs: Any) -> _Response:
    """A JSON response; ``payload`` already encoded (bytes) is sent as it is."""
    body = payload if isinstance(payload, bytes) else _dumps(payload)
    return _Response(status, body, **kwargs)


def _parse_head(head: bytes) -> tuple[_Request, int]:
    """Parse a request line and headers; return the request and its body length."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise _HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _HttpError(505, f"unsupported protocol version {version[:20]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _HttpError(501, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _HttpError(400, "malformed Content-Length") from None
    if length < 0:
        raise _HttpError(400, "malformed Content-Length")
    if length > _MAX_BODY:
        raise _HttpError(413, "request body too large")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.1":
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens
    return _Request(method.upper(), target, keep_alive), length


# --------------------------------------------------------------------- the answers


def _extent_degrees(place: PlaceLike) -> tuple[float, float, float, float]:
    """An approximate (south, north, west, east) box around a city, by population."""
    radius_km = max(2.0, math.sqrt(max(place.population, 0)) / 100.0)
    half_lat = radius_km / 111.32
    half_lng = radius_km / (111.32 * max(math.cos(math.radians(place.lat)), 0.01))
    south = max(-90.0, place.lat - half_lat)
    north = min(90.0, place.lat + half_lat)
    west = (place.lng - half_lng + 180.0) % 360.0 - 180.0
    east = (place.lng + half_lng + 180.0) % 360.0 - 180.0
    return round(south, 7), round(north, 7), round(west, 7), round(east, 7)


def _google_place_id(place: PlaceLike) -> str:
    token = base64.urlsafe_b64encode(f"geonames:{place.geonameid}".encode()).decode()
    return "ChIJ" + token.rstrip("=")


def google_result(place: PlaceLike) -> dict[str, Any]:
    """One entry of a Geocoding API ``results`` list, in Google's shape."""
    components = [
        {"long_name": place.name, "short_name": place.name, "types": ["locality", "political"]}
    ]
    admin1_name = getattr(place, "admin1_name", "")
    if admin1_name:  # GeoNames' numeric admin1 codes alone mean nothing to a reader
        components.append(
            {
                "long_name": admin1_name,
                "short_name": place.admin1 or admin1_name,
                "types": ["administrative_area_level_1", "political"],
            }
        )
    if place.country or place.country_code:
        components.append(
            {
                "long_name": place.country or place.country_code,
                "short_name": place.country_code or place.country,
                "types": ["country", "political"],
            }
        )
    south, north, west, east = _extent_degrees(place)
    box = {"northeast": {"lat": north, "lng": east}, "southwest": {"lat": south, "lng": west}}
    return {
        "address_components": components,
        "formatted_address": place.formatted_address,
        "geometry": {
            "bounds": box,
            "location": {"lat": place.lat, "lng": place.lng},
            "location_type": "APPROXIMATE",
            "viewport": box,
        },
        "place_id": _google_place_id(place),
        "types": ["locality", "political"],
    }


def nominatim_result(place: PlaceLike, fmt: str = "json") -> dict[str, Any]:
    """One entry of a Nominatim ``/search`` list (``format=json`` or ``jsonv2``)."""
    south, north, west, east = _extent_degrees(place)
    kind = "city" if place.population >= 100_000 else "town"
    importance = min(1.0, 0.2 + 0.1 * math.log10(max(place.population, 1)))
    result: dict[str, Any] = {
        "place_id": place.geonameid,
        "licence": _LICENCE,
        "osm_type": "node",
        "osm_id": place.geonameid,
        "lat": f"{place.lat:.7f}",
        "lon": f"{place.lng:.7f}",
        ("category" if fmt == "jsonv2" else "class"): "place",
        "type": kind,
        "place_rank": 16,
        "importance": round(importance, 5),
        "addresstype": kind,
        "name": place.name,
        "display_name": place.formatted_address,
        "boundingbox": [f"{south:.7f}", f"{north:.7f}", f"{west:.7f}", f"{east:.7f}"],
    }
    return result


def _google_status(
    status: str, message_key: str | None = None, http_status: int = 200
) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"results": [], "status": status}
    if message_key:
        payload["error_message"] = _GOOGLE_MESSAGES[message_key]
    return http_status, payload


def _nominatim_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _App:
    """Routes a request and decides its answer, on the event loop's thread."""

    def __init__(self, config: ServerConfig, gazetteer: Lookup) -> None:
        self.config = config
        self.stats = _Stats()
        self._gazetteer = gazetteer
        # Encoded answer bodies by (API, query): a repeated query costs no lookup
        # and no JSON encoding.
        self._bodies: dict[tuple[str, str], bytes] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the just-started state: counters, failure draws, rate window."""
        self._rng = random.Random(self.config.seed)
        self._limiter = _TokenBucket(self.config.rate_limit) if self.config.rate_limit else None
        self.stats.reset()

    def _answer(self, api: str, query: str) -> bytes:
        """The body answering ``query`` for ``api`` (google, json or jsonv2)."""
        body = self._bodies.get((api, query))
        if body is None:
            place = self._gazetteer.lookup(query)
            payload: Any
            if api == "google":
                payload = (
                    {"results": [], "status": "ZERO_RESULTS"}
                    if place is None
                    else {"results": [google_result(place)], "status": "OK"}
                )
            else:
                payload = [] if place is None else [nominatim_result(place, api)]
            body = _dumps(payload)
            if len(self._bodies) >= _ANSWER_CACHE_SIZE:
                self._bodies.clear()
            self._bodies[(api, query)] = body
        return body

    def handle(self, request: _Request) -> _Response:
        path, _, query_string = request.target.partition("?")
        path = unquote(path)
        if path.startswith("/_geofetch/"):
            return self._control(request, path)
        params: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True, errors="replace"):
            params.setdefault(name, value)
        now = time.monotonic()
        if path == GOOGLE_PATH:
            query = params.get("address")
        elif path in (NOMINATIM_PATH, NOMINATIM_PATH + ".php"):
            query = params.get("q")
        else:
            self.stats.arrive(now, None)
            return _json_response(
                404,
                _nominatim_error(404, f"no such path: {path[:200]}"),
                delay=self.config.latency_seconds,
                counted=True,
            )
        self.stats.arrive(now, query)
        # One draw per API request, whatever its outcome, so a seed fixes the sequence.
        failed = self._rng.random() < self.config.fail_rate
        delay = self.config.latency_seconds
        if request.method not in ("GET", "HEAD"):
            return _json_response(
                405,
                _nominatim_error(405, "use GET"),
                headers=(("Allow", "GET, HEAD"),),
                delay=delay,
                counted=True,
            )
        try:
            if path == GOOGLE_PATH:
                status, payload = self._google(params, query, now, failed)
                return _json_response(status, payload, delay=delay, counted=True)
            status, payload, headers = self._nominatim(params, query, now, failed)
            return _json_response(status, payload, headers=headers, delay=delay, counted=True)
        except Exception as exc:  # a gazetteer bug must not kill the connection
            payload = {"results": [], "status": "UNKNOWN_ERROR", "error_message": repr(exc)}
            return _json_response(500, payload, delay=delay, counted=True)

    def _google(
        self, params: dict[str, str], query: str | None, now: float, failed: bool
    ) -> tuple[int, dict[str, Any] | bytes]:
        if failed:
            return _google_status("UNKNOWN_ERROR", "UNKNOWN_ERROR", http_status=500)
        if self.config.key is not None:
            given = params.get("key")
            if not given:
                return _google_status("REQUEST_DENIED", "MISSING_KEY")
            if not hmac.compare_digest(given.encode(), self.config.key.encode()):
                return _google_status("REQUEST_DENIED", "BAD_KEY")
        if self._limiter is not None and not self._limiter.admit(now):
            return _google_status("OVER_QUERY_LIMIT", "OVER_QUERY_LIMIT")
        if query is None or not query.strip():
            return _google_status("INVALID_REQUEST", "INVALID_REQUEST")
        return 200, self._answer("google", query)

    def _nominatim(
        self, params: dict[str, str], query: str | None, now: float, failed: bool
    ) -> tuple[int, Any, tuple[tuple[str, str], ...]]:
        if failed:
            return 500, _nominatim_error(500, "Internal Server Error (fail_rate)"), ()
        if self._limiter is not None and not self._limiter.admit(now):
            return 429, _nominatim_error(429, "Too Many Requests"), (("Retry-After", "1"),)
        fmt = params.get("format", "json")
        if fmt not in _NOMINATIM_FORMATS:
            message = f"Parameter 'format' must be one of: {', '.join(_NOMINATIM_FORMATS)}"
            return 400, _nominatim_error(400, message), ()
        if query is None or not query.strip():
            return 400, _nominatim_error(400, "Nothing to search for."), ()
        return 200, self._answer(fmt, query), ()

    def _control(self, request: _Request, path: str) -> _Response:
        if path == STATS_PATH and request.method in ("GET", "HEAD"):
            return _json_response(200, _stats_to_json(self.stats.snapshot()))
        if path == RESET_PATH and request.method in ("GET", "POST"):
            self.reset()
            return _json_response(200, {"reset": True})
        if path in (STATS_PATH, RESET_PATH):
            return _json_response(405, _nominatim_error(405, "method not allowed"))
        return _json_response(404, _nominatim_error(404, f"no such path: {path[:200]}"))


def _stats_to_json(stats: dict[str, Any]) -> dict[str, Any]:
    out = dict(stats)
    out["per_query"] = dict(stats["per_query"])
    out["per_second"] = {str(k): v for k, v in stats["per_second"].items()}
    return out


def _stats_from_json(payload: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    out["per_query"] = Counter(payload["per_query"])
    out["per_second"] = {int(k): v for k, v in payload["per_second"].items()}
    return out


# -------------------------------------------------------------------- the protocol


class _HttpProtocol(asyncio.Protocol):
    """One connection: parse requests in order, answer each after its delay."""

    def __init__(self, app: _App, server: _Server) -> None:
        self._app = app
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a request is being answered
        self._counted = False  # ... and counts as in flight
        self._closed = False
        self._write_paused = False
        self._read_paused = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._counted = False
            self._app.stats.leave()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy and len(self._buffer) > _MAX_HEAD + _MAX_BODY and not self._read_paused:
            self._read_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._process()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._process()

    def _process(self) -> None:
        while not (self._busy or self._closed or self._write_paused):
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._reject(431, "request head too large")
                return
            started = self._loop.time()
            try:
                request, length = _parse_head(bytes(self._buffer[:end]))
            except _HttpError as exc:
                self._reject(exc.status, str(exc))
                return
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            del self._buffer[:total]
            if self._read_paused and len(self._buffer) <= _MAX_HEAD:
                self._read_paused = False
                assert self._transport is not None
                self._transport.resume_reading()
            self._busy = True
            response = self._app.handle(request)
            self._counted = response.counted
            if response.delay > 0:
                self._timer = self._loop.call_at(
                    started + response.delay - _TIMER_CENTRE, self._answer_later, request,
                    response,
                )
            else:
                self._send(request, response)

    def _answer_later(self, request: _Request, response: _Response) -> None:
        self._timer = None
        if not self._closed:
            self._send(request, response)
            self._process()

    def _send(self, request: _Request, response: _Response) -> None:
        if self._counted:
            self._counted = False
            self._app.stats.leave()
        keep_alive = request.keep_alive and not response.close and not self._server.closing
        assert self._transport is not None
        self._transport.write(_encode(response, keep_alive, request.method == "HEAD"))
        self._busy = False
        if not keep_alive:
            self._closed = True
            self._transport.close()

    def _reject(self, status: int, message: str) -> None:
        response = _json_response(status, _nominatim_error(status, message), close=True)
        self._send(_Request("GET", "", keep_alive=False), response)


class _Server:
    """The listening socket and its connections, on one event loop."""

    def __init__(self, app: _App) -> None:
        self.app = app
        self.connections: set[_HttpProtocol] = set()
        self.closing = False
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HttpProtocol(self.app, self),
            host,
            port,
            backlog=_LISTEN_BACKLOG,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        await asyncio.sleep(0)  # let connection_lost run
        if self._server is not None:
            await self._server.wait_closed()


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ---------------------------------------------------------------- the command line


def serve(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    gazetteer: Lookup | None = None,
) -> int:
    """Serve in the current thread until SIGINT or SIGTERM, then log per-second counts.

    Prints ``geofetch serve: listening on URL`` to ``stdout`` once ready; returns 0,
    or 2 when the address cannot be bound.
    """
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    return asyncio.run(_serve_main(config, host, port, stdout, stderr, gazetteer))


async def _serve_main(
    config: ServerConfig,
    host: str,
    port: int,
    stdout: IO[str],
    stderr: IO[str],
    gazetteer: Lookup | None,
) -> int:
    loop = asyncio.get_running_loop()
    app = _App(config, gazetteer if gazetteer is not None else _default_gazetteer())
    server = _Server(app)
    try:
        bound = await server.start(host, port)
    except OSError as exc:
        print(
            f"geofetch serve: cannot listen on {host}:{port}: {exc.strerror or exc}",
            file=stderr,
            flush=True,
        )
        return 2
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)  # main thread only
    watcher = asyncio.ensure_future(_watch_parent(stop))
    app.reset()
    print(f"geofetch serve: listening on {_url(host, bound)}", file=stdout, flush=True)
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signum)
        await server.close()
        stderr.write(format_per_second(app.stats.snapshot()))
        stderr.flush()
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Stop when the process that asked for this server (subprocess mode) is gone."""
    try:
        parent = int(os.environ.get(PARENT_ENV, ""))
    except ValueError:
        return
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()


# ------------------------------------------------------------------------ library


class LocalServer:
    """A local geocoding server for tests and benchmarks; a context manager.

    ``with LocalServer(latency=0.05) as url:`` yields the base URL
    (``http://127.0.0.1:PORT``). ``latency`` is seconds added per request,
    ``fail_rate`` the fraction answered with HTTP 500 (reproducible with ``seed``),
    ``rate_limit`` requests per second before ``OVER_QUERY_LIMIT`` / HTTP 429,
    ``key`` the API key Google requests must carry (``None``: any). ``port=0`` picks
    a free port. By default the server runs in a background thread; with
    ``subprocess=True`` it is ``python -m geofetch serve`` in a child process, so a
    client does not share its GIL. ``log``, if given, receives the per-second
    counts when the server stops. ``gazetteer`` replaces the offline gazetteer
    (thread mode only).
    """

    def __init__(
        self,
        latency: float = 0.05,
        fail_rate: float = 0.0,
        rate_limit: float | None = None,
        key: str | None = None,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        subprocess: bool = False,
        log: IO[str] | None = None,
        gazetteer: Lookup | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.config = ServerConfig(latency, fail_rate, rate_limit, key, seed)
        if not 0 <= port <= 65535:  # 0: the system picks a free port
            raise UsageError(f"port must be between 0 and 65535, not {port}")
        if subprocess and gazetteer is not None:
            raise UsageError("a custom gazetteer cannot be used with subprocess=True")
        self.host = host
        self.port = port
        self.subprocess = subprocess
        self.log = log
        self.startup_timeout = startup_timeout
        self._gazetteer = gazetteer
        self._url: str | None = None
        # thread mode
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        # subprocess mode
        self._process: _subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._child_log: IO[str] | None = None
        self._final_stats: dict[str, Any] | None = None

    def __repr__(self) -> str:
        mode = "subprocess" if self.subprocess else "thread"
        return f"<LocalServer {self._url or 'stopped'} ({mode}) {self.config!r}>"

    @property
    def url(self) -> str:
        """The base URL, ``http://HOST:PORT``; only while running."""
        if self._url is None:
            raise RuntimeError("the server is not running; call start() first")
        return self._url

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._url is not None

    def start(self) -> str:
        """Start serving; return the base URL. Idempotent while running."""
        if self._url is not None:
            return self._url
        try:
            if self.subprocess:
                self._start_child()
            else:
                self._start_thread()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop serving and release everything (thread joined, child reaped). Idempotent."""
        try:
            if self.subprocess:
                self._stop_child()
            else:
                self._stop_thread()
        finally:
            self._url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The child's process id in subprocess mode while running, else ``None``."""
        return self._process.pid if self._process is not None else None

    def stats(self) -> dict[str, Any]:
        """A snapshot: total, per_query (Counter), arrivals (``time.monotonic()``
        at each arrival), per_second ({second since start or reset: count}),
        max_in_flight, in_flight. After stop(), the counts as they were at the end."""
        if self._url is None:
            if self._final_stats is None:
                raise RuntimeError("the server has not run; call start() first")
            return self._final_stats
        if self.subprocess:
            return _stats_from_json(self._control("GET", STATS_PATH))
        assert self._server is not None
        return self._server.app.stats.snapshot()

    def reset(self) -> None:
        """Zero the counters, restart the seeded failure sequence and the rate window."""
        self._control("POST", RESET_PATH)

    def _control(self, method: str, path: str, timeout: float = 30.0) -> dict[str, Any]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path} answered HTTP {response.status}")
            stats: dict[str, Any] = json.loads(body)
            return stats
        finally:
            connection.close()

    # -- thread mode

    def _start_thread(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        gazetteer = self._gazetteer if self._gazetteer is not None else _default_gazetteer()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def main() -> None:
            asyncio.set_event_loop(loop)
            server = _Server(_App(self.config, gazetteer))
            try:
                port = loop.run_until_complete(server.start(self.host, self.port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self._server = server
            self._url = _url(self.host, port)
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(server.close())
                loop.close()

        self._thread = threading.Thread(target=main, name="geofetch-serve", daemon=True)
        self._thread.start()
        if not ready.wait(self.startup_timeout):
            raise RuntimeError(f"the server did not start within {self.startup_timeout} s")
        if failure:
            raise failure[0]

    def _stop_thread(self) -> None:
        thread, loop, server = self._thread, self._loop, self._server
        self._thread = self._loop = self._server = None
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(loop.stop)
        thread.join()
        if server is not None:
            self._final_stats = server.app.stats.snapshot()
            if self.log is not None:
                self.log.write(format_per_second(self._final_stats))
                self.log.flush()

    # -- subprocess mode

    def _command(self) -> list[str]:
        config = self.config
        command = [
            sys.executable,
            "-m",
            "geofetch",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--latency",
            repr(config.latency_seconds),
            "--fail-rate",
            repr(config.fail_rate),
        ]
        if config.rate_limit is not None:
            command += ["--rate-limit", repr(config.rate_limit)]
        if config.seed is not None:
            command += ["--seed", str(config.seed)]
        return command

    def _start_child(self) -> None:
        env = dict(os.environ)
        env.pop(KEY_ENV, None)
        if self.config.key is not None:
            env[KEY_ENV] = self.config.key  # never on the command line (ps shows it)
        env[PARENT_ENV] = str(os.getpid())
        # The child imports this very geofetch, installed or not.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._child_log = tempfile.TemporaryFile("w+", encoding="utf-8")
        process = _subprocess.Popen(
            self._command(),
            stdin=_subprocess.DEVNULL,
            stdout=_subprocess.PIPE,
            stderr=self._child_log,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self._process = process
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:  # drain stdout so the child can never block on it
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put("")

        self._reader = threading.Thread(target=read, name="geofetch-serve-stdout", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(
                    f"geofetch serve did not start within {self.startup_timeout} s"
                ) from None
            match = _LISTENING.search(line)
            if match:
                self._url = match.group(1)
                return
            if not line:
                raise RuntimeError(
                    f"geofetch serve exited with status {process.wait()}: "
                    f"{self._read_child_log().strip()[-2000:]}"
                )

    def _read_child_log(self) -> str:
        if self._child_log is None:
            return ""
        self._child_log.seek(0)
        return self._child_log.read()

    def _stop_child(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None and self._url is not None:
                with contextlib.suppress(OSError, RuntimeError, ValueError):
                    self._final_stats = _stats_from_json(self._control("GET", STATS_PATH, 5.0))
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except _subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            if self._reader is not None:
                self._reader.join(timeout=10)
                self._reader = None
            if process.stdout is not None:
                process.stdout.close()
            if self.log is not None:
                self.log.write(self._read_child_log())
                self.log.flush()
            if self._child_log is not None:
                self._child_log.close()
                self._child_log = None
