"""Result rows: plain, picklable dataclasses, one per input row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK = "ok"
NOT_FOUND = "not_found"
INVALID = "invalid"
FAILED = "failed"
STATUSES = (OK, NOT_FOUND, INVALID, FAILED)

#: Longest query or URL that is sent at all; longer ones are ``invalid``.
MAX_QUERY_LENGTH = 1000

GEOCODE_COLUMNS = ("lat", "lng", "formatted_address", "status", "error")
#: The address fields ``--fields`` adds (before ``status``), in this order; the same
#: names as :data:`geofetch.providers.base.ADDRESS_FIELDS`.
ADDRESS_FIELDS = ("country_code", "country", "admin1", "locality", "postcode", "place_id",
                  "precision", "confidence")
#: A reverse lookup's output columns (the input keeps its own coordinates).
REVERSE_COLUMNS = ("formatted_address", "status", "error")


def with_fields(columns: tuple[str, ...]) -> tuple[str, ...]:
    """``columns`` with :data:`ADDRESS_FIELDS` inserted before ``status``."""
    at = columns.index("status")
    return (*columns[:at], *ADDRESS_FIELDS, *columns[at:])
FETCH_COLUMNS = (
    "status_code",
    "final_url",
    "elapsed_ms",
    "bytes",
    "content_type",
    "title",
    "selected",
    "status",
    "error",
)


class Rejected(str):
    """A query that must not be asked (a malformed input row): the text, and the
    ``error`` (``"MalformedRow: ..."``) its ``invalid`` result carries."""

    error: str

    def __new__(cls, text: str, error: str) -> Rejected:
        value = super().__new__(cls, text)
        value.error = error
        return value

    def __reduce__(self) -> tuple[object, ...]:
        return (Rejected, (str(self), self.error))


@dataclass
class _AddressResult:
    """What a geocoding and a reverse geocoding row hold alike: the answer, the
    address fields, the row's status and cost."""

    query: str
    lat: float | None = None
    lng: float | None = None
    formatted_address: str | None = None
    status: str = FAILED
    error: str | None = None
    attempts: int = 0
    elapsed: float = 0.0
    raw: Any = field(default=None, repr=False)
    country_code: str | None = None
    country: str | None = None
    admin1: str | None = None
    locality: str | None = None
    postcode: str | None = None
    place_id: str | None = None
    precision: str | None = None
    confidence: float | None = None

    @property
    def ok(self) -> bool:
        """True when the provider answered with a place."""
        return self.status == OK

    def fields(self) -> dict[str, Any]:
        """The address fields by name (:data:`ADDRESS_FIELDS`)."""
        return {name: getattr(self, name) for name in ADDRESS_FIELDS}

    def columns(self) -> dict[str, Any]:
        """The output columns of this row: ``lat``, ``lng``, ``formatted_address``,
        the address fields, ``status`` and ``error`` (for a reverse row, ``lat`` and
        ``lng`` are the point asked: the GeoJSON writer's geometry)."""
        return {
            "lat": self.lat,
            "lng": self.lng,
            "formatted_address": self.formatted_address,
            **self.fields(),
            "status": self.status,
            "error": self.error,
        }


@dataclass
class GeocodeResult(_AddressResult):
    """The outcome of geocoding one place.

    ``lat``, ``lng`` and ``formatted_address`` are set only when ``status == "ok"``;
    ``error`` (``"ErrorClass: message"``) only when it is not. ``attempts`` counts the
    requests made for this row (0 for cached, invalid and offline rows), ``elapsed``
    is the seconds spent on it, ``raw`` the provider's own answer.

    The address fields (:data:`ADDRESS_FIELDS`; see
    :class:`geofetch.providers.base.Answer` for their meaning) are ``None`` where the
    provider gives none, and for rows that are not ``ok``.
    """


@dataclass
class ReverseResult(_AddressResult):
    """The outcome of reverse geocoding one point.

    ``query`` is the point as asked (``"52.52,13.405"``, or the cells as read);
    ``lat``/``lng`` the point parsed (WGS 84 degrees; ``None`` when it is
    ``invalid``); ``formatted_address`` and the address fields are the answer's
    (``None`` unless ``ok``), ``raw`` the provider's own answer (the offline
    provider's holds the city's point and its ``distance_km``). ``status``,
    ``error``, ``attempts``, ``elapsed`` as in :class:`GeocodeResult`.
    """


@dataclass
class FetchResult:
    """The outcome of fetching one URL.

    ``status`` is ``ok`` for a 2xx answer, ``invalid`` for a URL that is not http(s),
    ``failed`` otherwise with ``error`` such as ``"HTTPError: 404 Not Found"``.
    ``elapsed_ms`` is the time to the last byte, ``bytes`` the body size kept.
    """

    url: str
    status_code: int | None = None
    final_url: str | None = None
    elapsed_ms: int | None = None
    bytes: int | None = None
    content_type: str | None = None
    title: str | None = None
    selected: str | None = None
    status: str = FAILED
    error: str | None = None
    attempts: int = 0
    elapsed: float = 0.0

    @property
    def query(self) -> str:
        """The URL asked, under the name every result shares."""
        return self.url

    @property
    def ok(self) -> bool:
        """True when a 2xx page was obtained."""
        return self.status == OK

    def columns(self) -> dict[str, Any]:
        """The output columns of this row, in contract order."""
        return {name: getattr(self, name) for name in FETCH_COLUMNS}
