"""The offline provider: the embedded gazetteer (:mod:`geofetch.gazetteer`) as a provider.

No network, no key, no rate limit, not cached (a lookup is faster than the cache).
The matching rules, the stored index and the fuzzy search live in
:mod:`geofetch.gazetteer`; ``Gazetteer``, ``Place``, ``fold`` and ``POPULATIONS`` are
re-exported here for code written before that package existed.
"""

from __future__ import annotations

from typing import Any

from ..gazetteer import (
    DEFAULT_MIN_POPULATION,
    FUZZY_THRESHOLD,
    POPULATIONS,
    Gazetteer,
    Place,
    check_population,
    fold,
)
from .base import NOT_FOUND, Answer, Provider

__all__ = [
    "DEFAULT_MIN_POPULATION",
    "FUZZY_THRESHOLD",
    "POPULATIONS",
    "Gazetteer",
    "OfflineProvider",
    "Place",
    "fold",
]


class OfflineProvider(Provider):
    """The embedded gazetteer as a provider: no network, no key, no rate limit.

    ``min_population`` picks the city set (500, 1000, 5000 or 15000 people and more).
    """

    name = "offline"
    default_rate = None
    uses_network = False
    cacheable = False

    def __init__(self, min_population: int = DEFAULT_MIN_POPULATION) -> None:
        check_population(min_population)
        self.min_population = min_population
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

    def geocode(self, query: str, *, timeout: float) -> Answer:
        """Look ``query`` up; ``timeout`` is unused (a lookup takes microseconds)."""
        gazetteer = self._gazetteer
        if gazetteer is None:
            gazetteer = self._gazetteer = Gazetteer.load(self.min_population)
        place = gazetteer.lookup(query)
        if place is None:
            return NOT_FOUND
        return Answer(place.lat, place.lng, place.formatted_address, raw=place.to_dict())

    def cache_namespace(self) -> str:
        """``"offline:15000"``: the answer depends on the city set."""
        return f"{self.name}:{self.min_population}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_population={self.min_population})"
