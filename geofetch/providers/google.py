"""Google's Geocoding API through the official ``googlemaps`` client.

geofetch's engine owns retries, timeouts, the run-wide rate limit and the request
budget, so the client's own machinery is switched off and one
:meth:`GoogleProvider.geocode` is exactly one HTTP request. How, setting by setting
(read against ``googlemaps/client.py``, 4.10):

* ``client._request(path, params, extract_body=..., requests_kwargs=...)`` is called
  directly: ``client.geocode()`` returns only ``results`` (the status is lost) and its
  ``make_api_method`` wrapper mutates the shared client (``_extra_params``), which is
  unsafe across threads.
* A response hook (``requests_kwargs["hooks"]``) raises on every answer that is not
  HTTP 200 before the client sees it: the client re-requests 500/503/504 by recursion
  *before* calling ``extract_body``, so nothing else stops it. The client wraps the
  hook's exception in ``TransportError``; :meth:`GoogleProvider.geocode` unwraps it.
* ``extract_body`` is ours and raises geofetch errors, never the client's
  ``_RetriableRequest``, so ``OVER_QUERY_LIMIT`` and ``UNKNOWN_ERROR`` are not
  re-requested either; ``retry_over_query_limit=False`` says the same.
* ``queries_per_minute=0`` makes the client's quota ``floor(min(qps, qpm / 60)) == 0``,
  so its deque of send times (``maxlen`` 0) stays empty and its unlocked,
  per-instance sleep never runs; the shared :class:`~geofetch.core.ratelimit.RequestGate`
  is the rate limit. Both values are ints: a float makes the client ``sys.exit``.
* ``requests_kwargs["timeout"] = (timeout, timeout)`` per call bounds connect and
  read (the client's default is no timeout at all).
* ``requests_kwargs["allow_redirects"] = False``: a redirect is reported, not followed
  by a second request the rate limit and budget would not see.
* ``retry_timeout`` keeps its default: it is only consulted on recursion, which no
  longer happens (and 0 would fail the very first request, as it is checked first).

The client's ``Timeout()`` has an empty message and its ``TransportError`` repeats the
URL with ``key=``: errors are rebuilt from :data:`GOOGLE_STATUS_ERRORS` and
:data:`~geofetch.providers._http.HTTP_STATUS_ERRORS`, with the key redacted from
every message and from the chain they are raised from, and urllib3's request lines
are masked in the logs.
"""

from __future__ import annotations

import os
from typing import Any

import googlemaps
import requests

from ..exceptions import (
    ConnectionError,
    HTTPError,
    InvalidRequest,
    ProviderError,
    RateLimited,
    RequestDenied,
    ServerError,
    Timeout,
    UsageError,
)
from ..redact import redact
from ._http import (
    check_base_url,
    error_for_exception,
    error_for_response,
    guard_library_logs,
    scrub_chain,
    worker_session,
)
from .base import Answer, Provider

GOOGLE_URL = "https://maps.googleapis.com"
GEOCODE_PATH = "/maps/api/geocode/json"
KEY_ENV = "GOOGLE_MAPS_API_KEY"

#: Geocoding API ``status`` -> error. ``OK`` is an answer, ``ZERO_RESULTS`` a
#: not-found answer; any status not listed is an HTTPError.
GOOGLE_STATUS_ERRORS: dict[str, type[ProviderError]] = {
    "OVER_QUERY_LIMIT": RateLimited,
    "UNKNOWN_ERROR": ServerError,
    "INVALID_REQUEST": InvalidRequest,
    "REQUEST_DENIED": RequestDenied,
    "OVER_DAILY_LIMIT": RequestDenied,
}


class _NotOK(Exception):
    """Raised by the response hook so the client never sees a non-200 answer."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _stop_at_non_200(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code != 200:
        response.content  # noqa: B018 - read the body: frees the connection, keeps the detail
        raise _NotOK(response)


class GoogleProvider(Provider):
    """The Geocoding API (``/maps/api/geocode/json?address=``).

    ``key`` defaults to the ``GOOGLE_MAPS_API_KEY`` environment variable; ``base_url``
    points elsewhere (a local ``geofetch serve``); ``language`` and ``region`` are
    passed through as Google's parameters of those names.
    """

    name = "google"
    default_rate = 50.0
    uses_network = True
    cacheable = True

    def __init__(
        self,
        key: str | None = None,
        base_url: str | None = None,
        language: str | None = None,
        region: str | None = None,
    ) -> None:
        key = key or os.environ.get(KEY_ENV) or None
        if not key:
            raise UsageError(
                f"the google provider needs an API key: set {KEY_ENV} (or pass key= in the library)"
            )
        if not key.startswith("AIza"):  # the googlemaps client refuses any other key
            raise UsageError(
                f"the Google API key (from {KEY_ENV} or key=) is not a Maps API key: "
                "those start with 'AIza'"
            )
        self.key = key
        self.base_url = check_base_url(base_url or GOOGLE_URL)
        self.language = language
        self.region = region
        self._client: googlemaps.Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # a live client is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's client, with its retries and rate limit off (idempotent)."""
        if self._client is None:
            guard_library_logs(self.secrets())
            self._client = googlemaps.Client(
                key=self.key,
                base_url=self.base_url,
                retry_over_query_limit=False,
                queries_per_second=1,
                queries_per_minute=0,
                requests_session=worker_session(self.base_url),
            )

    def close(self) -> None:
        """Close this worker's HTTP session."""
        client, self._client = self._client, None
        if client is not None:
            client.session.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One Geocoding API request: the first result, or a not-found answer."""
        if self._client is None:
            self.open()
        assert self._client is not None
        params = {"address": query}
        if self.language:
            params["language"] = self.language
        if self.region:
            params["region"] = self.region
        requests_kwargs = {
            "timeout": (timeout, timeout),
            "allow_redirects": False,
            "hooks": {"response": [_stop_at_non_200]},
        }
        try:
            body = self._client._request(
                GEOCODE_PATH,
                params,
                extract_body=self._extract_body,
                requests_kwargs=requests_kwargs,
            )
        except googlemaps.exceptions.Timeout as exc:
            raise self._transport_error(exc.__context__, exc, timeout) from exc
        except googlemaps.exceptions.TransportError as exc:
            if isinstance(exc.base_exception, _NotOK):
                # the HTTP status is the original error: no chain to show
                raise error_for_response(exc.base_exception.response, self.secrets()) from None
            raise self._transport_error(exc.base_exception, exc, timeout) from exc
        return self._answer(body)

    def _transport_error(
        self, cause: BaseException | None, raised: BaseException, timeout: float
    ) -> ProviderError:
        """Map the requests failure under the client's ``Timeout``/``TransportError``."""
        if isinstance(cause, requests.RequestException):
            error = error_for_exception(cause, timeout, self.secrets())
        elif isinstance(raised, googlemaps.exceptions.Timeout):
            error = Timeout(f"no answer within {timeout:g} s")
        else:  # the client hides the cause: say what we know
            error = ConnectionError(redact(str(raised), self.secrets()) or type(raised).__name__)
        scrub_chain(raised, self.secrets())
        return error

    def _extract_body(self, response: requests.Response) -> dict[str, Any]:
        """Parse a 200 answer; raise the error its ``status`` stands for."""
        try:
            body = response.json()
        except ValueError as exc:
            kind = response.headers.get("Content-Type") or "no Content-Type"
            raise HTTPError(
                f"HTTP 200 with a body that is not JSON ({kind})", status_code=200
            ) from exc
        status = body.get("status") if isinstance(body, dict) else None
        if status in ("OK", "ZERO_RESULTS"):
            return dict(body)
        if status is None:
            raise HTTPError("HTTP 200 without a Geocoding API status", status_code=200)
        message = str(status)
        if body.get("error_message"):
            message += f": {str(body['error_message']).strip()}"
        error = GOOGLE_STATUS_ERRORS.get(status, HTTPError)
        raise error(redact(message, self.secrets()), status_code=200)

    @staticmethod
    def _answer(body: dict[str, Any]) -> Answer:
        results = body.get("results") or []
        if body["status"] == "ZERO_RESULTS" or not results:
            return Answer(raw=body)
        first = results[0]
        try:
            location = first["geometry"]["location"]
            lat, lng = float(location["lat"]), float(location["lng"])
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPError("first result has no usable geometry.location") from exc
        return Answer(lat=lat, lng=lng, formatted_address=first.get("formatted_address"), raw=body)

    def cache_namespace(self) -> str:
        """Provider, server, language and region (never the key)."""
        return f"google|{self.base_url}|language={self.language or ''}|region={self.region or ''}"

    def secrets(self) -> tuple[str, ...]:
        """The API key."""
        return (self.key,)

    def __repr__(self) -> str:
        return (
            f"GoogleProvider(base_url={self.base_url!r}, language={self.language!r}, "
            f"region={self.region!r})"
        )
