"""Google's Geocoding API, spoken directly over :mod:`geofetch.http`.

One :meth:`GoogleProvider.geocode` is exactly one
``GET {base_url}/maps/api/geocode/json?address=...&key=...`` (one
:meth:`GoogleProvider.reverse` one ``...?latlng=LAT,LNG&key=...``): geofetch's engine owns
retries, the run-wide rate limit, the request budget and the timeout, and this
request is bounded by that timeout as a whole (connect, headers and body).

Why not the official ``googlemaps`` client: its public API cannot make one request
per call. ``Client.geocode()`` re-requests 500/503/504 by recursion (and
``OVER_QUERY_LIMIT``) before any hook of the caller sees the answer, returns only
``results`` (the status is lost: ``ZERO_RESULTS`` and ``OK`` with nothing look
alike), bounds each socket read but not the request, and sends through its own
``requests`` session. The API it wraps is a GET with a JSON answer
(https://developers.google.com/maps/documentation/geocoding/requests-geocoding),
read here the way the client reads it:

* HTTP status other than 200: :data:`~geofetch.http.HTTP_STATUS_ERRORS` (429
  ``RateLimited``, 5xx ``ServerError``, 401/403 ``RequestDenied``, ...), with the
  body's ``error_message`` and ``Retry-After``; a redirect is reported, not followed.
* HTTP 200: the body's ``status``: ``OK`` and ``ZERO_RESULTS`` are answers, the
  others errors per :data:`GOOGLE_STATUS_ERRORS`.

The key is sent as ``key=`` (last, as the client sends it) and redacted from every
message, the chain errors are raised from, and urllib3's log records. Any key is
accepted: Google's own start with ``AIza``, but a compatible server (``--base-url``,
``geofetch serve --key``) may use another.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote_plus, urlencode

from ..exceptions import (
    HTTPError,
    InvalidAnswer,
    InvalidRequest,
    ProviderError,
    RateLimited,
    RequestDenied,
    ServerError,
    UsageError,
)
from ..http import HTTPClient, Response, check_base_url, error_for_response, guard_library_logs
from ..redact import redact
from .base import (
    APPROXIMATE,
    COUNTRY,
    LOCALITY,
    POSTCODE,
    REGION,
    ROOFTOP,
    STREET,
    Answer,
    Provider,
    check_countries,
    check_language,
    decimal_degrees,
)

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

#: An ``OVER_QUERY_LIMIT`` whose message says a daily quota is spent ("You have
#: exceeded your daily request quota for this API.") cannot succeed today: it stops
#: the run as ``OVER_DAILY_LIMIT`` does, instead of being retried as a rate limit.
DAILY_QUOTA = re.compile(r"\bdaily\b|\bper day\b", re.IGNORECASE)

#: ``geometry.location_type`` -> precision, where the type alone decides it.
LOCATION_TYPE_PRECISION = {"ROOFTOP": ROOFTOP, "RANGE_INTERPOLATED": STREET}
#: Result ``types`` -> precision, for ``GEOMETRIC_CENTER`` and ``APPROXIMATE``
#: results: the first of a result's types found here, in this order, decides.
TYPE_PRECISION = (
    ("street_address", STREET), ("premise", STREET), ("subpremise", STREET),
    ("route", STREET), ("intersection", STREET),
    ("postal_code", POSTCODE),
    ("neighborhood", LOCALITY), ("sublocality", LOCALITY), ("locality", LOCALITY),
    ("postal_town", LOCALITY),
    ("administrative_area_level_2", REGION), ("administrative_area_level_1", REGION),
    ("country", COUNTRY),
)


def google_precision(result: dict[str, Any]) -> str:
    """The precision (:data:`~geofetch.providers.base.PRECISIONS`) of one Geocoding
    API result, from ``geometry.location_type`` and ``types``."""
    geometry = result.get("geometry")
    location_type = geometry.get("location_type") if isinstance(geometry, dict) else None
    if location_type in LOCATION_TYPE_PRECISION:
        return LOCATION_TYPE_PRECISION[str(location_type)]
    types = result.get("types")
    types = types if isinstance(types, list) else []
    for name, precision in TYPE_PRECISION:
        if name in types:
            return precision
    return APPROXIMATE


def google_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The address fields of one Geocoding API result (``address_components``,
    ``place_id``, the precision); Google rates no match, so ``confidence`` is None."""
    by_type: dict[str, dict[str, Any]] = {}
    components = result.get("address_components")
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict) or not isinstance(component.get("types"), list):
            continue
        for kind in component["types"]:
            by_type.setdefault(str(kind), component)

    def name(kind: str, form: str = "long_name") -> str | None:
        value = by_type.get(kind, {}).get(form)
        return str(value) if value not in (None, "") else None

    code = name("country", "short_name")
    place_id = result.get("place_id")
    return {
        "country_code": code.upper() if code and len(code) == 2 else None,
        "country": name("country"),
        "admin1": name("administrative_area_level_1"),
        "locality": name("locality") or name("postal_town"),
        "postcode": name("postal_code"),
        "place_id": str(place_id) if place_id not in (None, "") else None,
        "precision": google_precision(result),
        "confidence": None,
    }


class GoogleProvider(Provider):
    """The Geocoding API (``/maps/api/geocode/json?address=``).

    ``key`` defaults to the ``GOOGLE_MAPS_API_KEY`` environment variable (a
    :class:`~geofetch.exceptions.UsageError` when neither is given); ``base_url``
    points elsewhere (a local ``geofetch serve``); ``language`` and ``region`` are
    passed through as Google's parameters of those names; ``countries`` (ISO 3166-1
    alpha-2 codes) restricts a geocode to those countries
    (``components=country:DE|country:AT``) and keeps of a reverse answer's results
    the first in one of them (reverse geocoding takes no component filter).
    """

    name = "google"
    default_rate = 50.0
    uses_network = True
    cacheable = True
    supports_reverse = True

    def __init__(
        self,
        key: str | None = None,
        base_url: str | None = None,
        language: str | None = None,
        region: str | None = None,
        countries: tuple[str, ...] | str | None = None,
    ) -> None:
        key = key or os.environ.get(KEY_ENV) or None
        if not key:
            raise UsageError(
                f"the google provider needs an API key: set {KEY_ENV} (or pass key= in the library)"
            )
        self.key = key
        self.base_url = check_base_url(base_url or GOOGLE_URL)
        self.language = check_language(language)
        self.region = region
        self.countries = check_countries(countries)
        self._client: HTTPClient | None = None
        # the URL around the address, built once: a request only quotes the address
        extra = [(name, value) for name, value in (("language", language), ("region", region))
                 if value]
        components = ([("components", "|".join(f"country:{c}" for c in self.countries))]
                      if self.countries else [])
        self._url_head = f"{self.base_url}{GEOCODE_PATH}?address="
        self._url_tail = "&" + urlencode([*components, *extra, ("key", key)])
        self._reverse_tail = "&" + urlencode([*extra, ("key", key)])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # a live client is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's HTTP client (idempotent)."""
        if self._client is None:
            guard_library_logs(self.secrets())
            self._client = HTTPClient(headers={"Accept": "application/json"},
                                      secrets=self.secrets())

    def close(self) -> None:
        """Close this worker's connections."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One Geocoding API request: the first result, or a not-found answer."""
        if self._client is None:
            self.open()
        assert self._client is not None
        url = self._url_head + quote_plus(query) + self._url_tail
        response = self._client.get(url, timeout=timeout)
        return self.parse(response)

    def reverse(self, lat: float, lng: float, *, timeout: float) -> Answer:
        """One reverse Geocoding API request (``latlng=``): the first result (of
        ``countries``, when set), or a not-found answer."""
        if self._client is None:
            self.open()
        assert self._client is not None
        url = (f"{self.base_url}{GEOCODE_PATH}?latlng={decimal_degrees(lat)},"
               f"{decimal_degrees(lng)}{self._reverse_tail}")
        return self.parse(self._client.get(url, timeout=timeout), countries=self.countries)

    def parse(self, response: Response, *, countries: tuple[str, ...] | None = None) -> Answer:
        """The answer a Geocoding API response stands for, or the error it is."""
        if response.status != 200:
            raise error_for_response(response, self.secrets())
        try:
            body = response.json()
        except ValueError as exc:
            kind = response.content_type or "no Content-Type"
            raise HTTPError(
                f"HTTP 200 with a body that is not JSON ({kind})", status_code=200
            ) from exc
        status = body.get("status") if isinstance(body, dict) else None
        if status is None:
            raise HTTPError("HTTP 200 without a Geocoding API status", status_code=200)
        if status not in ("OK", "ZERO_RESULTS"):
            message = str(status)
            if body.get("error_message"):
                message += f": {str(body['error_message']).strip()}"
            error = GOOGLE_STATUS_ERRORS.get(status, HTTPError)
            if status == "OVER_QUERY_LIMIT" and DAILY_QUOTA.search(message):
                error = RequestDenied
            raise error(redact(message, self.secrets()), status_code=200)
        results = body.get("results") or []
        if not isinstance(results, list):
            raise InvalidAnswer("results is not a list", status_code=200)
        if countries:
            results = [r for r in results if isinstance(r, dict)
                       and google_fields(r)["country_code"] in countries]
        if status == "ZERO_RESULTS" or not results:
            return Answer(raw=body)
        first = results[0]
        try:
            location = first["geometry"]["location"]
            lat, lng = float(location["lat"]), float(location["lng"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidAnswer("first result has no usable geometry.location",
                            status_code=200) from exc
        return Answer(lat=lat, lng=lng, formatted_address=first.get("formatted_address"),
                      raw=body, **google_fields(first))

    def cache_namespace(self) -> str:
        """Provider, server, language, region and countries (never the key)."""
        namespace = (f"google|{self.base_url}|language={self.language or ''}"
                     f"|region={self.region or ''}")
        if self.countries:
            namespace += f"|countries={','.join(self.countries)}"
        return namespace

    def secrets(self) -> tuple[str, ...]:
        """The API key."""
        return (self.key,)

    def __repr__(self) -> str:
        return (
            f"GoogleProvider(base_url={self.base_url!r}, language={self.language!r}, "
            f"region={self.region!r}, countries={self.countries!r})"
        )
