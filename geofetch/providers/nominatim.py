"""OpenStreetMap's Nominatim search API, over :mod:`geofetch.http`.

One :meth:`NominatimProvider.geocode` is one ``GET {base_url}/search?q=...&format=json``
(one :meth:`NominatimProvider.reverse` one ``GET {base_url}/reverse?lat=...&lon=...``),
bounded as a whole by the request timeout (connect, headers and body), with no
redirect followed, so the engine's rate limit and budget count every request the
server sees. The public server asks for at most 1 request/s and a User-Agent
naming the application (https://operations.osmfoundation.org/policies/nominatim/):
hence ``default_rate``.

Any HTTP answer or failure becomes a :mod:`geofetch.exceptions` error through the
table in :mod:`geofetch.http`, which the Google provider shares, so both services
fail the same way for the same HTTP status.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

from ..exceptions import HTTPError, InvalidAnswer
from ..http import (
    DEFAULT_USER_AGENT,
    HTTPClient,
    Response,
    check_base_url,
    error_for_response,
    guard_library_logs,
)
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

NOMINATIM_URL = "https://nominatim.openstreetmap.org"
#: Why a dask run may not ask the public server: its usage policy
#: (https://operations.osmfoundation.org/policies/nominatim/) forbids "heavy uses"
#: and distributed clients.
DISTRIBUTED_FORBIDDEN = ("the public Nominatim server (nominatim.openstreetmap.org) may "
                         "not be asked by a distributed client (its usage policy): use "
                         "--executor thread, or your own Nominatim with --base-url")

#: The public server's host, and its usage policy: at most 1 request per second, an
#: identifying User-Agent (or a contact), no distributed or heavy use.
PUBLIC_HOST = "nominatim.openstreetmap.org"
POLICY_URL = "https://operations.osmfoundation.org/policies/nominatim/"

#: ``addresstype`` (else ``type``) -> precision; any other is ``approximate``.
#: Nominatim's place ranks (https://nominatim.org/release-docs/latest/customize/Ranking/).
ADDRESSTYPE_PRECISION = {
    **dict.fromkeys(("house", "building", "house_number", "amenity", "shop", "office",
                     "tourism", "leisure", "craft"), ROOFTOP),
    **dict.fromkeys(("road", "street", "highway", "pedestrian", "residential", "footway",
                     "square"), STREET),
    "postcode": POSTCODE,
    **dict.fromkeys(("city", "town", "village", "hamlet", "municipality", "suburb",
                     "borough", "city_district", "quarter", "neighbourhood", "locality",
                     "isolated_dwelling", "city_block", "croft"), LOCALITY),
    **dict.fromkeys(("state", "region", "province", "state_district", "county",
                     "district", "department"), REGION),
    "country": COUNTRY,
}
#: Address keys that name a locality, most specific to least.
LOCALITY_KEYS = ("city", "town", "village", "hamlet", "municipality")
#: Address keys that name the first-level division.
ADMIN1_KEYS = ("state", "province", "region")


def nominatim_precision(place: dict[str, Any]) -> str:
    """The precision of one Nominatim place, from its ``addresstype`` (``jsonv2`` and
    ``json`` from 4.0 on) or its ``type``."""
    for key in ("addresstype", "type"):
        value = place.get(key)
        if isinstance(value, str) and value in ADDRESSTYPE_PRECISION:
            return ADDRESSTYPE_PRECISION[value]
    return APPROXIMATE


def nominatim_fields(place: dict[str, Any]) -> dict[str, Any]:
    """The address fields of one Nominatim place (with ``addressdetails=1``).

    ``place_id`` is the OSM object (``osm_type`` initial, upper case, and ``osm_id``:
    ``"R62422"``), which stays the same across servers, unlike Nominatim's own
    ``place_id``. Nominatim rates no match (``importance`` ranks places, not matches),
    so ``confidence`` is None."""
    address = place.get("address")
    address = address if isinstance(address, dict) else {}

    def first(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            value = address.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    code = first(("country_code",))
    osm_type, osm_id = place.get("osm_type"), place.get("osm_id")
    return {
        "country_code": code.upper() if code and len(code) == 2 else None,
        "country": first(("country",)),
        "admin1": first(ADMIN1_KEYS),
        "locality": first(LOCALITY_KEYS),
        "postcode": first(("postcode",)),
        "place_id": (f"{str(osm_type)[:1].upper()}{osm_id}"
                     if isinstance(osm_type, str) and osm_type and osm_id not in (None, "")
                     else None),
        "precision": nominatim_precision(place),
        "confidence": None,
    }


class NominatimProvider(Provider):
    """Nominatim's ``/search`` endpoint.

    ``base_url`` points at a self-hosted instance (no trailing ``/search``);
    ``user_agent`` replaces geofetch's own; ``email`` is sent as Nominatim's
    ``email`` parameter (its operators' preferred contact); ``language`` as
    ``accept-language``; ``countries`` (ISO 3166-1 alpha-2 codes) as ``countrycodes``
    for a search, and for a reverse lookup (which takes no such filter) an answer
    outside them is not found.

    Against the public server (:data:`PUBLIC_HOST`) ``max_rate`` is 1 request per
    second, as its usage policy (:data:`POLICY_URL`) says: a run asking for more is
    a :class:`~geofetch.exceptions.UsageError`.
    """

    name = "nominatim"
    default_rate = 1.0
    uses_network = True
    cacheable = True
    supports_reverse = True

    def __init__(
        self,
        base_url: str = NOMINATIM_URL,
        user_agent: str | None = None,
        email: str | None = None,
        language: str | None = None,
        countries: tuple[str, ...] | str | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.public = urlsplit(self.base_url).hostname == PUBLIC_HOST
        #: The most requests per second this server allows (None: no limit known).
        self.max_rate = 1.0 if self.public else None
        if self.public:
            self.distributed_forbidden = DISTRIBUTED_FORBIDDEN
        self.custom_agent = bool(user_agent)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.email = email
        self.language = check_language(language)
        self.countries = check_countries(countries)
        self._client: HTTPClient | None = None
        # the URL around the query, built once: a request only quotes the query
        common: list[tuple[str, str]] = [("format", "json"), ("addressdetails", "1")]
        if language:
            common.append(("accept-language", language))
        if email:
            common.append(("email", email))
        search = [("limit", "1"), *common]
        if self.countries:
            search.append(("countrycodes", ",".join(c.lower() for c in self.countries)))
        self._url_head = f"{self.base_url}/search?q="
        self._url_tail = "&" + urlencode(search)
        self._reverse_tail = "&" + urlencode(common)

    def policy_warning(self) -> str | None:
        """A warning when the public server is asked with no way to reach us."""
        if not self.public or self.email or self.custom_agent:
            return None
        return (f"the public Nominatim asks each application to identify itself: give "
                f"--email ADDRESS or --user-agent 'app/1.0 (contact)' ({POLICY_URL})")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client"] = None  # a live client is built per worker, never pickled
        return state

    def open(self) -> None:
        """Build this worker's HTTP client (idempotent)."""
        if self._client is None:
            guard_library_logs(self.secrets())
            self._client = HTTPClient(
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                secrets=self.secrets())

    def close(self) -> None:
        """Close this worker's connections."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """One search request: the first match, or a not-found answer for ``[]``."""
        if self._client is None:
            self.open()
        assert self._client is not None
        url = self._url_head + quote_plus(query) + self._url_tail
        return self.parse(self._client.get(url, timeout=timeout))

    def reverse(self, lat: float, lng: float, *, timeout: float) -> Answer:
        """One ``/reverse`` request: the place there, or a not-found answer (Nominatim's
        ``{"error": "Unable to geocode"}``, or a place outside ``countries``)."""
        if self._client is None:
            self.open()
        assert self._client is not None
        url = (f"{self.base_url}/reverse?lat={decimal_degrees(lat)}"
               f"&lon={decimal_degrees(lng)}{self._reverse_tail}")
        return self.parse_reverse(self._client.get(url, timeout=timeout))

    def parse_reverse(self, response: Response) -> Answer:
        """The answer a ``/reverse`` response stands for, or the error it is."""
        body = self._json(response)
        if not isinstance(body, dict):
            raise HTTPError(
                f"expected a JSON object, got {type(body).__name__}: "
                + redact(str(body)[:200], self.secrets()),
                status_code=200,
            )
        if "error" in body:  # {"error": "Unable to geocode"}: nothing there
            return Answer(raw=body)
        answer = self._place_answer(body, raw=body)
        if self.countries and answer.country_code not in self.countries:
            return Answer(raw=body)
        return answer

    def _json(self, response: Response) -> Any:
        if response.status != 200:
            raise error_for_response(response, self.secrets())
        try:
            return response.json()
        except ValueError as exc:
            raise HTTPError(
                "HTTP 200 with a body that is not JSON "
                f"({response.content_type or 'no Content-Type'})",
                status_code=200,
            ) from exc

    @staticmethod
    def _place_answer(place: Any, raw: Any, what: str = "the place") -> Answer:
        try:
            lat, lng = float(place["lat"]), float(place["lon"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidAnswer(f"{what} has no usable lat/lon", status_code=200) from exc
        return Answer(lat=lat, lng=lng, formatted_address=place.get("display_name"), raw=raw,
                      **nominatim_fields(place))

    def parse(self, response: Response) -> Answer:
        """The answer a ``/search`` response stands for, or the error it is."""
        body = self._json(response)
        if not isinstance(body, list):
            raise HTTPError(
                f"expected a JSON list of places, got {type(body).__name__}: "
                + redact(str(body)[:200], self.secrets()),
                status_code=200,
            )
        if not body:
            return Answer(raw=body)
        first = body[0]
        if not isinstance(first, dict):
            raise InvalidAnswer("first place has no usable lat/lon", status_code=200)
        return self._place_answer(first, raw=body, what="first place")

    def cache_namespace(self) -> str:
        """Provider, server, language and countries: what besides the query decides
        the answer."""
        namespace = f"nominatim|{self.base_url}|language={self.language or ''}"
        if self.countries:
            namespace += f"|countries={','.join(self.countries)}"
        return namespace

    def __repr__(self) -> str:
        return f"NominatimProvider(base_url={self.base_url!r}, language={self.language!r})"
