"""``Place``: one city of the gazetteer, as lookups return it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Place"]


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
