"""``Place``: one city of the gazetteer, as lookups return it; ``Match``: a place and how
the query named it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Match", "Place"]


@dataclass(frozen=True)
class Place:
    """One city of the gazetteer.

    ``lat``/``lng`` are WGS84 degrees. ``admin1`` is the first-level division: the
    state's postal code in the US (``"TX"``), GeoNames' admin1 code elsewhere
    (``"08"``); ``admin1_name`` its name where known (US states, Canadian provinces),
    else ``""``.
    """

    name: str
    lat: float
    lng: float
    country_code: str
    country: str
    admin1: str
    population: int
    geonameid: int
    admin1_name: str = ""

    @property
    def formatted_address(self) -> str:
        """``"Vienna, Austria"``; ``"Portland, Maine, United States"`` where the state is known."""
        parts = [self.name, self.admin1_name, self.country or self.country_code]
        return ", ".join(part for part in parts if part)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready), plus ``formatted_address``."""
        return {**asdict(self), "formatted_address": self.formatted_address}


@dataclass(frozen=True)
class Match:
    """What :meth:`geofetch.gazetteer.Gazetteer.match` found for a query.

    ``exact``: a name of ``place`` (its own, an alternate, or their transliteration)
    stands in the query as it is (the whole query, a comma part, or a run of its
    words); else the match is fuzzy. ``similarity``: 1.0 when exact, else the indel
    similarity of the misspelt words and the name (``FUZZY_THRESHOLD`` to 1.0).
    ``matched``: the query's words that named the city, folded (``"lyon"``).
    ``address``: the query had a street, house number or postcode part, so the
    answer is the city the address is in, not the address. ``postcode``: the
    postcode as the query wrote it (``"69002"``), else ``None``; not checked against
    the city.
    """

    place: Place
    exact: bool
    similarity: float
    matched: str
    address: bool = False
    postcode: str | None = None

    @property
    def confidence(self) -> float:
        """How sure the match is, 0..1: 1.0 when exact, else the similarity."""
        return 1.0 if self.exact else self.similarity
