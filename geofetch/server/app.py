"""The application: a request in, a response out, decided the moment it arrives.

Routes Google's ``/maps/api/geocode/json?address=`` (and ``?latlng=``, reverse),
Nominatim's ``/search?q=&format=json`` and ``/reverse?lat=&lon=&format=json``, and the
``/_geofetch/stats`` and ``/_geofetch/reset`` control endpoints. A reverse request is
answered with the nearest city within :data:`~.config.REVERSE_MAX_KM` km (Google
``ZERO_RESULTS``, Nominatim ``{"error": "Unable to geocode"}`` beyond it).
Every API request is counted, draws once from the seeded failure sequence, passes
the key check (Google) and the token bucket, in arrival order, which is what makes
``seed`` reproducible. The delay is not served here: the response carries it and the
protocol (:mod:`.protocol`) writes it that much later. Nothing here knows about
sockets or HTTP framing.
"""

from __future__ import annotations

import hmac
import json
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote, unquote_plus

from .answers import Locator, Lookup, PlaceLike, google_result, nominatim_result
from .config import (
    GOOGLE_PATH,
    NOMINATIM_PATH,
    NOMINATIM_REVERSE_PATH,
    RESET_PATH,
    REVERSE_MAX_KM,
    STATS_PATH,
    ServerConfig,
)
from .stats import Stats, stats_to_json

__all__ = [
    "AnswerMemo",
    "App",
    "Request",
    "Response",
    "TokenBucket",
    "default_gazetteer",
    "dumps",
    "error_response",
    "parse_query",
]

_MIN_POPULATION = 15000
_NOMINATIM_FORMATS = ("json", "jsonv2")
_GOOGLE_MESSAGES = {
    "INVALID_REQUEST": (
        "Invalid request. Missing the 'address', 'components', 'latlng' or 'place_id' parameter."
    ),
    "MISSING_KEY": (
        "You must use an API key to authenticate each request to Google Maps Platform APIs. "
        "For additional information, please refer to http://g.co/dev/maps-no-account"
    ),
    "BAD_KEY": "The provided API key is invalid. ",
    "BAD_LATLNG": "Invalid request. Invalid 'latlng' parameter.",
    "OVER_QUERY_LIMIT": "You have exceeded your rate-limit for this API.",
    "UNKNOWN_ERROR": "Server error injected by the geofetch local server (fail_rate).",
}
#: Bytes a memo entry costs beyond its query and body (key tuple, dict slot, objects).
_ENTRY_OVERHEAD = 200


def default_gazetteer() -> Lookup:
    """The offline gazetteer of cities of 15,000 people or more (loaded once per process)."""
    from ..gazetteer import Gazetteer

    return Gazetteer.load(min_population=_MIN_POPULATION)


class Request(NamedTuple):
    """What the app reads of a request: ``method`` upper case, ``target`` as sent."""

    method: str
    target: str


class Response(NamedTuple):
    """What the app answers: the protocol frames it (Date, Content-Length, Connection).

    ``delay`` is seconds after arrival; ``counted`` marks an API request, in flight
    until written; ``close`` closes the connection after it.
    """

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    counted: bool = False
    close: bool = False


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as the real APIs send it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, message: str, *, close: bool = False) -> Response:
    """A JSON error body ``{"error": {"code", "message"}}`` (Nominatim's shape)."""
    return Response(status, dumps(_error(status, message)), close=close)


def parse_query(query_string: str) -> dict[str, str]:
    """The fields of ``a=1&b=2`` (``+`` is a space, ``%XX`` UTF-8, bad bytes replaced).

    As ``urllib.parse.parse_qsl(keep_blank_values=True, errors="replace")``, the first
    value of a repeated name kept; faster, since most fields need no unquoting.
    """
    params: dict[str, str] = {}
    for field in query_string.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors="replace")
        if name in params:
            continue
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="replace")
        params[name] = value
    return params


class TokenBucket:
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
        """Take a token at ``now`` (seconds, monotonic); False when none is left."""
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0 - 1e-9:  # float error must not refuse an on-time request
            self._tokens -= 1.0
            return True
        return False


class AnswerMemo:
    """Encoded answers by (API, query), least recently used dropped past ``max_bytes``.

    An entry costs ``len(query) + len(body)`` plus a fixed overhead; an entry bigger
    than an eighth of the bound is not kept (it would evict too much). ``max_bytes``
    0 keeps nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, api: str, query: str) -> bytes | None:
        """The stored body, now the most recently used, or ``None``."""
        key = (api, query)
        body = self._entries.get(key)
        if body is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return body

    def put(self, api: str, query: str, body: bytes) -> None:
        """Store ``body``, dropping the least recently used entries past the bound."""
        size = len(query) + len(body) + _ENTRY_OVERHEAD
        if size * 8 > self.max_bytes:
            return
        key = (api, query)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(query) + len(old) + _ENTRY_OVERHEAD
        self._entries[key] = body
        self.bytes += size
        entries = self._entries
        while self.bytes > self.max_bytes:
            (_, dropped_query), dropped = entries.popitem(last=False)
            self.bytes -= len(dropped_query) + len(dropped) + _ENTRY_OVERHEAD

    def snapshot(self) -> dict[str, int]:
        """memo_bytes, memo_max_bytes, memo_entries, memo_hits, memo_misses."""
        return {
            "memo_bytes": self.bytes,
            "memo_max_bytes": self.max_bytes,
            "memo_entries": len(self._entries),
            "memo_hits": self.hits,
            "memo_misses": self.misses,
        }


class App:
    """Routes a request and decides its answer, on the event loop's thread."""

    def __init__(self, config: ServerConfig, gazetteer: Lookup) -> None:
        self.config = config
        self.stats = Stats()
        self.memo = AnswerMemo(config.memo_bytes)
        self._gazetteer = gazetteer
        self._nearest: Any = None  # the spatial index, built on the first reverse request
        self._key = config.key.encode() if config.key is not None else None
        #: Set by the listener: its connection counters, for the stats.
        self.connection_stats: Callable[[], dict[str, int]] | None = None
        self.reset()

    def reset(self) -> None:
        """Back to the just-started state: counters, failure draws, rate window."""
        self._rng = random.Random(self.config.seed)
        self._limiter = TokenBucket(self.config.rate_limit) if self.config.rate_limit else None
        self.stats.reset()

    def snapshot(self) -> dict[str, Any]:
        """The request counters (:meth:`Stats.snapshot`), the memo's (``memo_*``) and
        the listener's (``connections_*``, ``heads_*``)."""
        extra = self.connection_stats() if self.connection_stats is not None else {}
        return {**self.stats.snapshot(), **self.memo.snapshot(), **extra}

    def _answer(self, api: str, query: str, address: bool = False,
                countries: tuple[str, ...] = ()) -> bytes:
        """The body answering ``query`` for ``api`` (google, json or jsonv2);
        ``address``: Nominatim's ``addressdetails=1``; ``countries``: only cities of
        these (Google ``components=country:``, Nominatim ``countrycodes``), where the
        gazetteer can filter so. A code that names no country matches no city, as
        with the services: all codes unknown, Google says ``ZERO_RESULTS`` and
        Nominatim ``[]`` (never an error)."""
        memo_api = api + ("+address" if address else "") + "|" + ",".join(countries)
        body = self.memo.get(memo_api, query)
        if body is None:
            lookup: Any = self._gazetteer.lookup
            known: Any = getattr(self._gazetteer, "country_codes", None)
            kept = countries
            if countries and known is not None:
                kept = tuple(code for code in countries if code in known())
            if countries and not kept:
                place = None
            else:
                place = lookup(query, countries=kept) if kept else lookup(query)
            payload: Any
            if api == "google":
                payload = (
                    {"results": [], "status": "ZERO_RESULTS"}
                    if place is None
                    else {"results": [google_result(place)], "status": "OK"}
                )
            else:
                payload = [] if place is None else [nominatim_result(place, api, address)]
            body = dumps(payload)
            self.memo.put(memo_api, query, body)
        return body

    def _nearest_place(self, lat: float, lng: float) -> PlaceLike | None:
        """The city nearest the point within REVERSE_MAX_KM, or None."""
        gazetteer = self._gazetteer
        if not isinstance(gazetteer, Locator):
            return None
        if self._nearest is None:
            from ..gazetteer.nearest import NearestIndex

            self._nearest = NearestIndex(*gazetteer.coordinates())
        found = self._nearest.nearest(lat, lng, REVERSE_MAX_KM)
        return None if found is None else gazetteer.place_at(found.position)

    def _reverse_answer(self, api: str, lat: float, lng: float, address: bool = True) -> bytes:
        """The body answering a reverse request for ``api`` (google, json or jsonv2)."""
        place = self._nearest_place(lat, lng)
        if api == "google":
            if place is None:
                return dumps({"results": [], "status": "ZERO_RESULTS"})
            return dumps({"plus_code": {}, "results": [google_result(place)], "status": "OK"})
        if place is None:
            return dumps({"error": "Unable to geocode"})
        return dumps(nominatim_result(place, api, address))

    def handle(self, request: Request, now: float) -> Response:
        """The response to ``request``, arrived at ``now`` (``time.monotonic()`` seconds)."""
        path, _, query_string = request.target.partition("?")
        if "%" in path:
            path = unquote(path)
        if path.startswith("/_geofetch/"):
            return self._control(request, path)
        params = parse_query(query_string)
        delay = self.config.latency_seconds
        if path == GOOGLE_PATH:
            query = params.get("address")
            if query is None and "latlng" in params:
                query = "latlng=" + params["latlng"]
        elif path == NOMINATIM_PATH or path == NOMINATIM_PATH + ".php":
            query = params.get("q")
        elif path == NOMINATIM_REVERSE_PATH or path == NOMINATIM_REVERSE_PATH + ".php":
            query = f"lat={params.get('lat', '')}&lon={params.get('lon', '')}"
        else:
            self.stats.arrive(now, None)
            body = dumps(_error(404, f"no such path: {path[:200]}"))
            return Response(404, body, delay=delay, counted=True)
        self.stats.arrive(now, query)
        # One draw per API request, whatever its outcome, so a seed fixes the sequence.
        failed = self._rng.random() < self.config.fail_rate
        if request.method != "GET" and request.method != "HEAD":
            body = dumps(_error(405, "use GET"))
            return Response(405, body, (("Allow", "GET, HEAD"),), delay, True)
        try:
            if path == GOOGLE_PATH:
                status, body = self._google(params, query, now, failed)
                return Response(status, body, (), delay, True)
            reverse = path.startswith(NOMINATIM_REVERSE_PATH)
            status, body, headers = self._nominatim(params, query, now, failed, reverse)
            return Response(status, body, headers, delay, True)
        except Exception as exc:  # a gazetteer bug must not kill the connection
            payload = {"results": [], "status": "UNKNOWN_ERROR", "error_message": repr(exc)}
            return Response(500, dumps(payload), (), delay, True)

    def _google(
        self, params: dict[str, str], query: str | None, now: float, failed: bool
    ) -> tuple[int, bytes]:
        if failed:
            return _google_status("UNKNOWN_ERROR", "UNKNOWN_ERROR", http_status=500)
        if self._key is not None:
            given = params.get("key")
            if not given:
                return _google_status("REQUEST_DENIED", "MISSING_KEY")
            if not hmac.compare_digest(given.encode(), self._key):
                return _google_status("REQUEST_DENIED", "BAD_KEY")
        if self._limiter is not None and not self._limiter.admit(now):
            return _google_status("OVER_QUERY_LIMIT", "OVER_QUERY_LIMIT")
        if "address" not in params and "latlng" in params:
            point = _point(*(params["latlng"].split(",", 1) + [""])[:2])
            if point is None:
                return _google_status("INVALID_REQUEST", "BAD_LATLNG")
            return 200, self._reverse_answer("google", *point)
        if query is None or not query.strip():
            return _google_status("INVALID_REQUEST", "INVALID_REQUEST")
        components = params.get("components", "").split("|")
        countries = tuple(c.partition(":")[2].upper() for c in components
                          if c.partition(":")[0] == "country")
        return 200, self._answer("google", query, countries=countries)

    def _nominatim(
        self, params: dict[str, str], query: str | None, now: float, failed: bool,
        reverse: bool = False,
    ) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        if failed:
            return 500, dumps(_error(500, "Internal Server Error (fail_rate)")), ()
        if self._limiter is not None and not self._limiter.admit(now):
            return 429, dumps(_error(429, "Too Many Requests")), (("Retry-After", "1"),)
        fmt = params.get("format", "json")
        if fmt not in _NOMINATIM_FORMATS:
            message = f"Parameter 'format' must be one of: {', '.join(_NOMINATIM_FORMATS)}"
            return 400, dumps(_error(400, message)), ()
        details = params.get("addressdetails", "1" if reverse else "0") not in ("0", "")
        if reverse:
            point = _point(params.get("lat", ""), params.get("lon", ""))
            if point is None:
                return 400, dumps(_error(400, "Invalid coordinates")), ()
            return 200, self._reverse_answer(fmt, *point, details), ()
        if query is None or not query.strip():
            return 400, dumps(_error(400, "Nothing to search for.")), ()
        countries = tuple(c.strip().upper() for c in params.get("countrycodes", "").split(",")
                          if c.strip())
        return 200, self._answer(fmt, query, details, countries), ()

    def _control(self, request: Request, path: str) -> Response:
        if path == STATS_PATH and request.method in ("GET", "HEAD"):
            return Response(200, dumps(stats_to_json(self.snapshot())))
        if path == RESET_PATH and request.method in ("GET", "POST"):
            self.reset()
            return Response(200, dumps({"reset": True}))
        if path in (STATS_PATH, RESET_PATH):
            return error_response(405, "method not allowed")
        return error_response(404, f"no such path: {path[:200]}")


def _point(lat: str, lng: str) -> tuple[float, float] | None:
    """``(lat, lng)`` from two query parameters, or None unless both are numbers in
    range (-90..90, -180..180)."""
    try:
        point = float(lat), float(lng)
    except ValueError:
        return None
    if not (-90.0 <= point[0] <= 90.0 and -180.0 <= point[1] <= 180.0):
        return None  # NaN fails both comparisons too
    return point


def _google_status(
    status: str, message_key: str | None = None, http_status: int = 200
) -> tuple[int, bytes]:
    payload: dict[str, Any] = {"results": [], "status": status}
    if message_key:
        payload["error_message"] = _GOOGLE_MESSAGES[message_key]
    return http_status, dumps(payload)
