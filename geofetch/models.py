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
class GeocodeResult:
    """The outcome of geocoding one place.

    ``lat``, ``lng`` and ``formatted_address`` are set only when ``status == "ok"``;
    ``error`` (``"ErrorClass: message"``) only when it is not. ``attempts`` counts the
    requests made for this row (0 for cached, invalid and offline rows), ``elapsed``
    is the seconds spent on it, ``raw`` the provider's own answer.
    """

    query: str
    lat: float | None = None
    lng: float | None = None
    formatted_address: str | None = None
    status: str = FAILED
    error: str | None = None
    attempts: int = 0
    elapsed: float = 0.0
    raw: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when coordinates were obtained."""
        return self.status == OK

    def columns(self) -> dict[str, Any]:
        """The output columns of this row, in contract order."""
        return {
            "lat": self.lat,
            "lng": self.lng,
            "formatted_address": self.formatted_address,
            "status": self.status,
            "error": self.error,
        }


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
