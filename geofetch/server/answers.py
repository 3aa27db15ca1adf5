"""Gazetteer places in the shapes of Google's Geocoding API and Nominatim's ``/search``
and ``/reverse``.

Pure functions of a place; the routing, statuses and errors are in :mod:`.app`.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Locator", "Lookup", "PlaceLike", "google_result", "nominatim_address",
           "nominatim_result"]

_LICENCE = "Data © GeoNames contributors, CC BY 4.0 (geofetch local server)"


class PlaceLike(Protocol):
    """What the server reads from a gazetteer match (:class:`geofetch.gazetteer.Place`)."""

    @property
    def name(self) -> str: ...

    @property
    def lat(self) -> float: ...

    @property
    def lng(self) -> float: ...

    @property
    def country_code(self) -> str: ...

    @property
    def country(self) -> str: ...

    @property
    def admin1(self) -> str: ...

    @property
    def admin1_name(self) -> str: ...

    @property
    def population(self) -> int: ...

    @property
    def geonameid(self) -> int: ...

    @property
    def formatted_address(self) -> str: ...


class Lookup(Protocol):
    """A gazetteer: ``lookup(query)`` returns the best match or ``None``."""

    def lookup(self, query: str) -> PlaceLike | None: ...


@runtime_checkable
class Locator(Protocol):
    """A gazetteer that reverse requests can be answered from: every city's point
    (:meth:`geofetch.gazetteer.Gazetteer.coordinates`) and the city at a position."""

    def coordinates(self) -> tuple[Sequence[float], Sequence[float]]: ...

    def place_at(self, index: int) -> PlaceLike: ...


def _extent_degrees(place: PlaceLike) -> tuple[float, float, float, float]:
    """An approximate (south, north, west, east) box around a city, by population."""
    radius_km = max(2.0, math.sqrt(max(place.population, 0)) / 100.0)
    half_lat = radius_km / 111.32
    half_lng = radius_km / (111.32 * max(math.cos(math.radians(place.lat)), 0.01))
    south = max(-90.0, place.lat - half_lat)
    north = min(90.0, place.lat + half_lat)
    west = (place.lng - half_lng + 180.0) % 360.0 - 180.0
    east = (place.lng + half_lng + 180.0) % 360.0 - 180.0
    return round(south, 7), round(north, 7), round(west, 7), round(east, 7)


def _google_place_id(place: PlaceLike) -> str:
    token = base64.urlsafe_b64encode(f"geonames:{place.geonameid}".encode()).decode()
    return "ChIJ" + token.rstrip("=")


def google_result(place: PlaceLike) -> dict[str, Any]:
    """One entry of a Geocoding API ``results`` list, in Google's shape."""
    components = [
        {"long_name": place.name, "short_name": place.name, "types": ["locality", "political"]}
    ]
    admin1_name = getattr(place, "admin1_name", "")
    if admin1_name:  # GeoNames' numeric admin1 codes alone mean nothing to a reader
        components.append(
            {
                "long_name": admin1_name,
                "short_name": place.admin1 or admin1_name,
                "types": ["administrative_area_level_1", "political"],
            }
        )
    if place.country or place.country_code:
        components.append(
            {
                "long_name": place.country or place.country_code,
                "short_name": place.country_code or place.country,
                "types": ["country", "political"],
            }
        )
    south, north, west, east = _extent_degrees(place)
    box = {"northeast": {"lat": north, "lng": east}, "southwest": {"lat": south, "lng": west}}
    return {
        "address_components": components,
        "formatted_address": place.formatted_address,
        "geometry": {
            "bounds": box,
            "location": {"lat": place.lat, "lng": place.lng},
            "location_type": "APPROXIMATE",
            "viewport": box,
        },
        "place_id": _google_place_id(place),
        "types": ["locality", "political"],
    }


def nominatim_address(place: PlaceLike) -> dict[str, str]:
    """The ``address`` object Nominatim adds with ``addressdetails=1``."""
    kind = "city" if place.population >= 100_000 else "town"
    address = {kind: place.name}
    admin1_name = getattr(place, "admin1_name", "")
    if admin1_name:
        address["state"] = admin1_name
    if place.country:
        address["country"] = place.country
    if place.country_code:
        address["country_code"] = place.country_code.lower()
    return address


def nominatim_result(place: PlaceLike, fmt: str = "json",
                     address: bool = False) -> dict[str, Any]:
    """One entry of a Nominatim ``/search`` list, or a ``/reverse`` answer
    (``format=json`` or ``jsonv2``); ``address``: with ``addressdetails=1``'s
    ``address`` object."""
    south, north, west, east = _extent_degrees(place)
    kind = "city" if place.population >= 100_000 else "town"
    importance = min(1.0, 0.2 + 0.1 * math.log10(max(place.population, 1)))
    result: dict[str, Any] = {
        "place_id": place.geonameid,
        "licence": _LICENCE,
        "osm_type": "node",
        "osm_id": place.geonameid,
        "lat": f"{place.lat:.7f}",
        "lon": f"{place.lng:.7f}",
        ("category" if fmt == "jsonv2" else "class"): "place",
        "type": kind,
        "place_rank": 16,
        "importance": round(importance, 5),
        "addresstype": kind,
        "name": place.name,
        "display_name": place.formatted_address,
        "boundingbox": [f"{south:.7f}", f"{north:.7f}", f"{west:.7f}", f"{east:.7f}"],
    }
    if address:
        result["address"] = nominatim_address(place)
    return result
