"""The offline provider: the embedded gazetteer (:mod:`geofetch.gazetteer`) as a provider.

No network, no key, no rate limit, not cached (a lookup is faster than the cache).
The matching rules, the stored index and the fuzzy search live in
:mod:`geofetch.gazetteer`; ``Gazetteer``, ``Place``, ``fold`` and ``POPULATIONS`` are
re-exported here for code written before that package existed.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from ..exceptions import UsageError
from ..gazetteer import (
    DEFAULT_MIN_POPULATION,
    FUZZY_THRESHOLD,
    POPULATIONS,
    Gazetteer,
    Place,
    check_population,
    fold,
)
from ..gazetteer.nearest import NearestIndex
from .base import LOCALITY, NOT_FOUND, Answer, Provider, check_countries

__all__ = [
    "DEFAULT_MAX_DISTANCE_KM",
    "DEFAULT_MIN_POPULATION",
    "FUZZY_THRESHOLD",
    "POPULATIONS",
    "Gazetteer",
    "OfflineProvider",
    "Place",
    "fold",
]

#: Kilometres beyond which the nearest city is no answer to a reverse lookup.
DEFAULT_MAX_DISTANCE_KM = 50.0

# one spatial index per process and city set, shared by every provider copy
_nearest: dict[int, NearestIndex] = {}
_nearest_lock = threading.Lock()


def nearest_index(gazetteer: Gazetteer) -> NearestIndex:
    """This process's :class:`NearestIndex` over ``gazetteer``'s cities (built once)."""
    index = _nearest.get(gazetteer.min_population)
    if index is None:
        with _nearest_lock:
            index = _nearest.get(gazetteer.min_population)
            if index is None:
                index = NearestIndex(*gazetteer.coordinates())
                _nearest[gazetteer.min_population] = index
    return index


def place_answer(place: Place, *, confidence: float | None, raw: Any) -> Answer:
    """The answer a gazetteer city stands for: always ``locality`` precision (the
    gazetteer knows cities, so a street address resolved to its city is a city)."""
    address = place.formatted_address
    if isinstance(raw, dict) and "formatted_address" not in raw:
        raw["formatted_address"] = address
    return Answer(
        place.lat, place.lng, address, raw=raw,
        country_code=place.country_code or None,
        country=place.country or None,
        admin1=place.admin1_name or place.admin1 or None,
        locality=place.name,
        place_id=str(place.geonameid),
        precision=LOCALITY,
        confidence=confidence,
    )


class OfflineProvider(Provider):
    """The embedded gazetteer as a provider: no network, no key, no rate limit.

    ``min_population`` picks the city set (500, 1000, 5000 or 15000 people and more).
    ``countries`` (ISO 3166-1 alpha-2 codes) keeps answers to cities of those
    countries. ``max_distance`` (km, default :data:`DEFAULT_MAX_DISTANCE_KM`) is the
    farthest the nearest city of a reverse lookup may be (farther: not found).
    Raises :class:`UsageError` for a bad value of any of them.
    """

    name = "offline"
    default_rate = None
    uses_network = False
    cacheable = False
    supports_reverse = True

    def __init__(self, min_population: int = DEFAULT_MIN_POPULATION,
                 countries: tuple[str, ...] | str | None = None,
                 max_distance: float = DEFAULT_MAX_DISTANCE_KM) -> None:
        check_population(min_population)
        if (isinstance(max_distance, bool) or not isinstance(max_distance, int | float)
                or not math.isfinite(max_distance) or max_distance <= 0):
            raise UsageError(f"max-distance: must be a finite number of km above 0, "
                             f"not {max_distance!r}")
        self.min_population = min_population
        self.countries = check_countries(countries)
        self.max_distance = float(max_distance)
        self._gazetteer: Gazetteer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_gazetteer"] = None  # each process loads (or inherits) its own index
        return state

    def open(self) -> None:
        """Load the gazetteer (shared by every provider in this process)."""
        if self._gazetteer is None:
            self._gazetteer = Gazetteer.load(self.min_population)

    def close(self) -> None:
        """Drop this provider's reference; the process keeps its shared index."""
        self._gazetteer = None

    def _loaded(self) -> Gazetteer:
        gazetteer = self._gazetteer
        if gazetteer is None:
            gazetteer = self._gazetteer = Gazetteer.load(self.min_population)
        return gazetteer

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """Look ``query`` up; ``timeout`` is unused (a lookup takes microseconds).

        ``confidence`` is 1.0 for a city named exactly (its own name, an alternate
        name or their transliteration), else the fuzzy match's similarity;
        ``precision`` is always ``locality``: an address is answered with its city.
        """
        found = self._loaded().match(query, countries=self.countries)
        if found is None:
            return NOT_FOUND
        return place_answer(found.place, confidence=round(found.confidence, 3),
                            raw=found.place.to_dict())

    def reverse(self, lat: float, lng: float, *, timeout: float) -> Answer:
        """The nearest city within ``max_distance`` km (``timeout`` unused).

        ``raw`` is the city's fields plus ``distance_km``, the great-circle distance
        from the point asked. With ``countries``, the nearest city is an answer only
        if it lies in one of them (the nearest populated place decides, so a point
        just across a border is not answered with a farther city).
        """
        gazetteer = self._loaded()
        found = nearest_index(gazetteer).nearest(lat, lng, self.max_distance)
        if found is None:
            return NOT_FOUND
        place = gazetteer.place_at(found.position)
        if self.countries is not None and place.country_code not in self.countries:
            return NOT_FOUND
        # Place.to_dict's dataclasses.asdict costs as much as the lookup: built by hand
        raw = {"name": place.name, "lat": place.lat, "lng": place.lng,
               "country_code": place.country_code, "country": place.country,
               "admin1": place.admin1, "admin1_name": place.admin1_name,
               "population": place.population, "geonameid": place.geonameid,
               "distance_km": round(found.distance_km, 3)}
        return place_answer(place, confidence=None, raw=raw)

    def cache_namespace(self) -> str:
        """``"offline:15000"``, plus the countries and the distance where set."""
        namespace = f"{self.name}:{self.min_population}"
        if self.countries:
            namespace += f"|countries={','.join(self.countries)}"
        if self.max_distance != DEFAULT_MAX_DISTANCE_KM:
            namespace += f"|max_distance={self.max_distance:g}"
        return namespace

    def __repr__(self) -> str:
        options = f"min_population={self.min_population}"
        if self.countries:
            options += f", countries={self.countries!r}"
        if self.max_distance != DEFAULT_MAX_DISTANCE_KM:
            options += f", max_distance={self.max_distance:g}"
        return f"{type(self).__name__}({options})"
