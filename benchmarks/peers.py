"""geofetch against the usual ways of geocoding a list, on one workload, in one run.

The workload: ``--requests`` distinct city names (fresh ones for every contender)
against the local Google-compatible server, started once in a child process
(``LocalServer(subprocess=True)``, so no contender shares its GIL) with
``--latency`` seconds per answer and no rate limit of its own. The contenders:

* ``geopy``: ``GoogleV3`` behind geopy's ``RateLimiter`` at Google's 50 requests/s
  (``min_delay_seconds=0.02``), one call after another: the common ETL recipe.
* ``Pool(4).map``: the seed recipe, ``multiprocessing.Pool(4).map`` over the names,
  one ``googlemaps.Client(key=..., base_url=url)`` per process; pool start-up timed.
* ``geofetch``: the thread executor with 16 workers and the process executor with 4
  (pool start-up timed), no rate limit; and threads at the google provider's
  default 50/s, to compare like with like against geopy's limiter.

Prints rows/s of each and how many times faster geofetch's 16 threads are.
Measurements only; nothing is asserted. Needs geopy (``pip install geopy``).

    python benchmarks/peers.py [--requests 200] [--latency 0.05] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from geofetch.bench import BENCH_KEY, bench_names, measure  # noqa: E402
from geofetch.server import LocalServer  # noqa: E402

GOOGLE_QPS = 50

_client: Any = None  # one googlemaps.Client per Pool process (the seed recipe)


def _init_client(url: str) -> None:
    global _client
    import googlemaps

    _client = googlemaps.Client(key=BENCH_KEY, base_url=url)


def _pool_geocode(place: str) -> tuple[float, float] | None:
    results = _client.geocode(place)
    if not results:
        return None
    location = results[0]["geometry"]["location"]
    return location["lat"], location["lng"]


def run_geopy(places: list[str], url: str) -> tuple[float, int]:
    """geopy's GoogleV3 behind its RateLimiter, serial: (seconds, rows found)."""
    from geopy.extra.rate_limiter import RateLimiter
    from geopy.geocoders import GoogleV3

    started = time.perf_counter()
    geolocator = GoogleV3(api_key=BENCH_KEY, domain=urlsplit(url).netloc, scheme="http",
                          timeout=10)
    geocode = RateLimiter(geolocator.geocode, min_delay_seconds=1 / GOOGLE_QPS)
    found = sum(geocode(place) is not None for place in places)
    return time.perf_counter() - started, found


def run_pool(places: list[str], url: str, processes: int = 4) -> tuple[float, int]:
    """``multiprocessing.Pool(processes).map``, a googlemaps client per process."""
    started = time.perf_counter()
    with multiprocessing.Pool(processes, initializer=_init_client, initargs=(url,)) as pool:
        found = sum(r is not None for r in pool.map(_pool_geocode, places))
    return time.perf_counter() - started, found


def run_geofetch(places: list[str], url: str, executor: str, workers: int,
                 rate: float = 0) -> tuple[float, int]:
    """geofetch's engine, no cache; pool start-up inside the time."""
    m = measure(places, executor=executor, workers=workers, provider="google", rate=rate,
                base_url=url, key=BENCH_KEY)
    return m.seconds, m.rows - m.failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="distinct places per contender")
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per answer")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    contenders: list[tuple[str, Callable[[list[str], str], tuple[float, int]]]] = [
        ("geopy GoogleV3 + RateLimiter(0.02 s), serial", run_geopy),
        ("multiprocessing.Pool(4).map + googlemaps", run_pool),
        ("geofetch process executor, 4 workers",
         lambda p, u: run_geofetch(p, u, "process", 4)),
        ("geofetch thread executor, 16 workers, rate 50/s",
         lambda p, u: run_geofetch(p, u, "thread", 16, rate=GOOGLE_QPS)),
        ("geofetch thread executor, 16 workers", lambda p, u: run_geofetch(p, u, "thread", 16)),
    ]
    results = []
    with LocalServer(latency=args.latency, subprocess=True) as url:
        # Start the forkserver untimed (it outlives every pool, as Pool's fork needs none).
        measure(["Berlin"], executor="process", workers=1, provider="offline")
        for index, (name, run) in enumerate(contenders):
            places = bench_names(args.requests, offset=index * args.requests)
            seconds, found = run(places, url)
            results.append({"contender": name, "rows": len(places), "found": found,
                            "seconds": seconds, "rows_per_second": len(places) / seconds})
            print(f"peers: {name}: {len(places) / seconds:.1f} rows/s", file=sys.stderr)
    ours = results[-1]["rows_per_second"]
    for row in results:
        row["geofetch_16_threads_is_x_faster"] = ours / row["rows_per_second"]
    if args.json:
        print(json.dumps({"requests": args.requests, "latency_seconds": args.latency,
                          "cpus": os.cpu_count(), "results": results}, indent=2))
        return
    print(f"{args.requests} distinct places, server latency {args.latency * 1000:g} ms, "
          f"{os.cpu_count()} CPUs")
    width = max(len(r["contender"]) for r in results)
    print(f"{'contender':<{width}}  {'rows/s':>8}  {'seconds':>8}  {'found':>5}  "
          f"{'geofetch 16 threads ÷':>21}")
    for r in results:
        print(f"{r['contender']:<{width}}  {r['rows_per_second']:8.1f}  {r['seconds']:8.2f}  "
              f"{r['found']:5d}  {r['geofetch_16_threads_is_x_faster']:20.1f}x")


if __name__ == "__main__":
    main()
