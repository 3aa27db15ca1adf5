"""Offline reverse geocoding: scipy's cKDTree (what geofetch uses) against a pure-Python
grid, on the same points, in one run: index build time and single lookups per second.

Run: ``python benchmarks/bench_reverse.py [--min-population 15000] [--seconds 2]``

Three point sets: near cities (a city's point moved about 5 km: land, answers found),
uniform on the sphere (mostly sea: most find nothing within 50 km) and the two mixed.
Each lookup is one point, as the engine asks (a row at a time); each figure is the
best of ``--rounds`` interleaved rounds (the cores are shared and noisy); the batched cKDTree
query is printed for reference only. ``provider.reverse`` is the whole offline
provider call (index, Place, Answer). The grid is the fair alternative: exact, 3-D
unit vectors in cubic cells, rings searched outward until no closer point can exist.
Numbers only, nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geofetch.gazetteer import POPULATIONS, Gazetteer  # noqa: E402
from geofetch.gazetteer.nearest import NearestIndex, chord_for_km  # noqa: E402
from geofetch.providers.offline import OfflineProvider  # noqa: E402

MAX_KM = 50.0

_FRESH_BUILD = """
import sys, time
from geofetch.gazetteer import Gazetteer
g = Gazetteer.load(int(sys.argv[1]))
start = time.perf_counter()
from geofetch.gazetteer.nearest import NearestIndex
NearestIndex(*g.coordinates())
print(time.perf_counter() - start)
"""


class Grid:
    """Exact nearest point over unit vectors in cubic cells ``cell`` wide (chord)."""

    def __init__(self, lats: Sequence[float], lngs: Sequence[float], cell: float) -> None:
        self.cell = cell
        self.side = int(2 / cell) + 3
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.zs: list[float] = []
        cells: dict[int, list[int]] = {}
        for i, (lat, lng) in enumerate(zip(lats, lngs, strict=True)):
            x, y, z = unit(lat, lng)
            self.xs.append(x)
            self.ys.append(y)
            self.zs.append(z)
            cells.setdefault(self.key(*self.cell_of(x, y, z)), []).append(i)
        self.cells = {k: tuple(v) for k, v in cells.items()}

    def cell_of(self, x: float, y: float, z: float) -> tuple[int, int, int]:
        c = self.cell
        return int((x + 1) / c) + 1, int((y + 1) / c) + 1, int((z + 1) / c) + 1

    def key(self, i: int, j: int, k: int) -> int:
        return (i * self.side + j) * self.side + k

    def nearest(self, lat: float, lng: float, max_km: float) -> tuple[int, float] | None:
        x, y, z = unit(lat, lng)
        limit = chord_for_km(max_km)
        ci, cj, ck = self.cell_of(x, y, z)
        best, best_d2 = -1, limit * limit
        xs, ys, zs, cells, side = self.xs, self.ys, self.zs, self.cells, self.side
        ring = 0
        while True:
            for di in range(-ring, ring + 1):
                for dj in range(-ring, ring + 1):
                    edge = abs(di) == ring or abs(dj) == ring
                    dks = range(-ring, ring + 1) if edge else (-ring, ring)
                    base = ((ci + di) * side + cj + dj) * side + ck
                    for dk in dks:
                        bucket = cells.get(base + dk)
                        if bucket is None:
                            continue
                        for p in bucket:
                            dx, dy, dz = xs[p] - x, ys[p] - y, zs[p] - z
                            d2 = dx * dx + dy * dy + dz * dz
                            if d2 < best_d2:
                                best, best_d2 = p, d2
            reach = ring * self.cell
            if reach * reach > best_d2:
                break
            ring += 1
        return None if best < 0 else (best, math.sqrt(best_d2))


def unit(lat: float, lng: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lng)
    c = math.cos(phi)
    return c * math.cos(lam), c * math.sin(lam), math.sin(phi)


def per_second(function: Callable[[float, float], object], points: list[tuple[float, float]],
               seconds: float) -> float:
    """Calls of ``function(lat, lng)`` per second over ``points``, cycled for ``seconds``."""
    done = 0
    start = time.perf_counter()
    while True:
        for lat, lng in points:
            function(lat, lng)
        done += len(points)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def best_of(runs: int, function: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-population", type=int, default=15000, choices=POPULATIONS)
    parser.add_argument("--seconds", type=float, default=2.0, help="per lookup measurement")
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved rounds per figure (the best is shown)")
    parser.add_argument("--cells", default="0.004,0.01",
                        help="grid cell widths to try (unit-sphere chord; 0.01 = 64 km)")
    args = parser.parse_args()

    gazetteer = Gazetteer.load(args.min_population)
    lats, lngs = gazetteer.coordinates()
    print(f"{len(gazetteer):,} cities (min_population={args.min_population}), "
          f"one process, {args.seconds:g} s per figure")

    fresh = subprocess.run([sys.executable, "-c", _FRESH_BUILD, str(args.min_population)],
                           check=True, capture_output=True, text=True,
                           env={"PYTHONPATH": str(ROOT), "PATH": ""})
    tree_build = best_of(5, lambda: NearestIndex(lats, lngs))
    print(f"cKDTree build: {tree_build * 1000:.1f} ms (best of 5); in a fresh process with "
          f"the numpy/scipy import: {float(fresh.stdout) * 1000:.0f} ms")
    cells = [float(c) for c in args.cells.split(",")]
    grids = {}
    for cell in cells:
        grids[cell] = Grid(lats, lngs, cell)
        build = best_of(3, lambda cell=cell: Grid(lats, lngs, cell))
        print(f"grid build (cell {cell:g}): {build * 1000:.1f} ms (best of 3)")

    rng = random.Random(42)
    near = []
    for i in rng.sample(range(len(lats)), 3000):
        bearing = rng.uniform(0, 2 * math.pi)
        near.append((max(-90.0, min(90.0, lats[i] + 0.045 * math.cos(bearing))),
                     (lngs[i] + 0.045 * math.sin(bearing) + 180.0) % 360.0 - 180.0))
    sphere = [(math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180))
              for _ in range(3000)]
    mixed = near[:1500] + sphere[:1500]
    rng.shuffle(mixed)

    tree = NearestIndex(lats, lngs)
    provider = OfflineProvider(min_population=args.min_population)
    provider.open()
    print(f"\n{'lookups/s (single points)':30} {'near cities':>12} {'sphere':>12} {'mixed':>12}")
    rows: list[tuple[str, Callable[[float, float], object]]] = [
        ("cKDTree NearestIndex.nearest", lambda a, b: tree.nearest(a, b, MAX_KM)),
        *((f"grid (cell {c:g})", lambda a, b, g=g: g.nearest(a, b, MAX_KM))
          for c, g in grids.items()),
        ("provider.reverse (cKDTree)", lambda a, b: provider.reverse(a, b, timeout=1)),
    ]
    # interleaved rounds, best of each: a burst of load on the shared cores hits one
    # round of one row, not a whole row
    results: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name, _ in rows}
    for _ in range(args.rounds):
        for name, function in rows:
            for column, points in enumerate((near, sphere, mixed)):
                rate = per_second(function, points, args.seconds / args.rounds)
                results[name][column] = max(results[name][column], rate)
    for name, values in results.items():
        print(f"{name:30} " + " ".join(f"{v:12,.0f}" for v in values))
    base = results[rows[0][0]]
    for name, values in list(results.items())[1:]:
        ratio = " ".join(f"{v / b:12.2f}" for v, b in zip(values, base, strict=True))
        print(f"{'  ratio ' + name[:22]:30} {ratio}")

    import numpy as np

    batch = np.array([unit(a, b) for a, b in mixed])
    start = time.perf_counter()
    tree._tree.query(batch, k=1, distance_upper_bound=chord_for_km(MAX_KM))
    elapsed = time.perf_counter() - start
    print(f"\n(reference) one batched cKDTree query of {len(batch)} points: "
          f"{len(batch) / elapsed:,.0f} points/s")
    found = sum(tree.nearest(a, b, MAX_KM) is not None for a, b in mixed)
    print(f"mixed set: {found}/{len(mixed)} points have a city within {MAX_KM:g} km")


if __name__ == "__main__":
    main()
