"""The nearest city to a point: scipy's ``cKDTree`` over the cities' 3-D unit vectors.

Each city is stored as its point ``(x, y, z)`` on the unit sphere; the straight-line
(chord) distance between two such points orders them exactly as the great-circle
distance does, so a k-d tree's Euclidean nearest neighbour is the nearest city on
the globe, with no special case at the antimeridian or the poles.

Why ``cKDTree`` and not a grid of our own: ``benchmarks/bench_reverse.py`` measures
both on the same points in one run. A pure-Python grid over the same unit vectors
answers as fast only where its cell size happens to suit the density (fast mid-ocean
with large cells, slow among the dense cities of India or Europe, and the other way
round with small cells); the tree answers every region at about the same rate, builds
in a few milliseconds and is a well-kept library.

Distances are great-circle kilometres on a sphere of :data:`EARTH_RADIUS_KM` (the
IUGG mean radius), within about 0.5 % of the WGS 84 ellipsoid's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["EARTH_RADIUS_KM", "Nearest", "NearestIndex", "great_circle_km"]

#: The mean Earth radius (IUGG R1), kilometres.
EARTH_RADIUS_KM = 6371.0088


class Nearest(NamedTuple):
    """A lookup's answer: the point's position in the index and its distance (km)."""

    position: int
    distance_km: float


def _unit(lat: float, lng: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lng)
    cos_phi = math.cos(phi)
    return cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi)


def chord_for_km(km: float) -> float:
    """The chord of the unit sphere for a great-circle distance of ``km`` (>= 0)."""
    return 2.0 * math.sin(min(km / EARTH_RADIUS_KM, math.pi) / 2.0)


def km_for_chord(chord: float) -> float:
    """The great-circle distance in km for a chord of the unit sphere (0..2)."""
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(chord / 2.0, 1.0))


def great_circle_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """The great-circle distance in km between two points given in degrees."""
    return km_for_chord(math.dist(_unit(lat1, lng1), _unit(lat2, lng2)))


class NearestIndex:
    """The points ``lats``/``lngs`` (WGS 84 degrees, same length), indexed for
    nearest-point lookups.

    Building one for the 34,000 cities of the default gazetteer takes about 10 ms;
    :meth:`nearest` is read-only and thread-safe. Raises :class:`ValueError` when
    the two sequences differ in length.
    """

    def __init__(self, lats: Sequence[float], lngs: Sequence[float]) -> None:
        import numpy as np
        from scipy.spatial import cKDTree

        if len(lats) != len(lngs):
            raise ValueError(f"{len(lats)} latitudes but {len(lngs)} longitudes")
        phi = np.radians(np.asarray(lats, dtype=np.float64))
        lam = np.radians(np.asarray(lngs, dtype=np.float64))
        cos_phi = np.cos(phi)
        points = np.column_stack((cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)))
        self._size = len(points)
        self._tree: Any = cKDTree(points) if self._size else None
        self._bounds: dict[float, float] = {}  # max_km -> chord bound, computed once each

    def __len__(self) -> int:
        """The number of points."""
        return self._size

    def nearest(self, lat: float, lng: float, max_km: float = math.inf) -> Nearest | None:
        """The point nearest ``lat``/``lng`` (degrees) within ``max_km`` kilometres,
        or ``None`` when there is none that close (or no point at all)."""
        if self._tree is None:
            return None
        bound = self._bounds.get(max_km)
        if bound is None:
            bound = chord_for_km(max_km) if math.isfinite(max_km) else math.inf
            # distance_upper_bound is exclusive: nudge it so max_km itself is inside
            bound = self._bounds[max_km] = math.nextafter(bound, math.inf)
        phi, lam = math.radians(lat), math.radians(lng)
        cos_phi = math.cos(phi)
        point = (cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi))
        chord, index = self._tree.query(point, k=1, distance_upper_bound=bound)
        if index >= self._size:  # scipy's "none found": index == n, distance inf
            return None
        return Nearest(int(index), km_for_chord(float(chord)))
