"""How fast is the offline gazetteer? Cold build, warm load, exact, fuzzy and address
lookups.

Run: ``python benchmarks/bench_offline.py [--min-population 15000] [--seconds 2]``

The cold build and the warm load each run in a fresh interpreter (so the in-process
memo cannot hide them) against a temporary index store; lookups run in this process.
Numbers only, nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geofetch.gazetteer import POPULATIONS, Gazetteer, fold  # noqa: E402

_TIME_LOAD = """
import sys, time
from geofetch.gazetteer import Gazetteer
start = time.perf_counter()
Gazetteer.load(int(sys.argv[1]))
print(time.perf_counter() - start)
"""


def timed_load(min_population: int, store: str) -> float:
    """Seconds one fresh interpreter takes in ``Gazetteer.load`` with ``store``."""
    env = {**os.environ, "GEOFETCH_CACHE_DIR": store, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _TIME_LOAD, str(min_population)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def rate(function, queries: list[str], seconds: float) -> float:
    """Calls of ``function`` per second over ``queries``, cycled for ``seconds``."""
    done = 0
    start = time.perf_counter()
    while True:
        for query in queries:
            function(query)
        done += len(queries)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def misspell(name: str, rng: random.Random) -> str:
    """One deletion, insertion, substitution or swap of neighbours inside ``name``."""
    chars = list(name)
    i = rng.randrange(1, len(chars) - 1)
    edit = rng.choice("disw")
    if edit == "d":
        del chars[i]
    elif edit == "i":
        chars.insert(i, rng.choice("aeiounrst"))
    elif edit == "s":
        chars[i] = rng.choice("aeiounrst")
    else:
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-population", type=int, default=15000, choices=POPULATIONS)
    parser.add_argument("--seconds", type=float, default=2.0, help="per lookup measurement")
    parser.add_argument("--warm-runs", type=int, default=5, help="fresh interpreters timed")
    args = parser.parse_args()
    population = args.min_population

    with tempfile.TemporaryDirectory(prefix="geofetch-bench-") as store:
        cold = timed_load(population, store)
        warm = sorted(timed_load(population, store) for _ in range(args.warm_runs))
        size = sum(f.stat().st_size for f in Path(store).iterdir())
    print(f"index (min_population={population}): {size / 1e6:.1f} MB stored")
    print(f"cold build (JSON -> index -> store): {cold:.2f} s")
    print(f"warm load (fresh process): best {warm[0]:.3f} s, median {warm[len(warm) // 2]:.3f} s")

    gazetteer = Gazetteer.load(population)
    rng = random.Random(42)
    names = [n for n in gazetteer.names()[:5000] if len(n) >= 5]
    exact = rng.sample(names, 2000) + ["Vien", "大阪", "München", "Paris, TX", "Portland, ME"]
    print(f"exact lookups: {rate(gazetteer.lookup, exact, args.seconds):,.0f}/s")

    originals = rng.sample([n for n in names[:2000] if n.isascii()], 300)
    typos = [misspell(n, rng) for n in originals]
    fuzzy = [q for q in typos if not gazetteer._codes(fold(q))]  # not some other name
    per_second = rate(gazetteer.lookup, fuzzy, args.seconds)
    print(f"fuzzy lookups ({len(fuzzy)} one-edit typos): {per_second:,.0f}/s")
    answers = [gazetteer.lookup(q) for q in typos]
    right = sum(1 for p, n in zip(answers, originals, strict=True) if p and p.name == n)
    print(f"  typos resolved to the intended city: {right}/{len(typos)}")
    # Street addresses around the 300 biggest cities, in shapes of several countries.
    shapes = ["Hauptstraße 5, 80331 {}", "12 rue de la Paix, 75002 {}",
              "221B Baker Street, {} NW1 6XE", "1200 Main St, {}, 90210",
              "Via Roma 10 00184 {}", "1-2-3 Honcho, {} 100-0001"]
    cities = [n for n in gazetteer.names()[:300] if gazetteer.lookup(n) is not None]
    addresses = [shapes[i % len(shapes)].format(city) for i, city in enumerate(cities)]
    print(f"address lookups ({len(addresses)}): "
          f"{rate(gazetteer.lookup, addresses, args.seconds):,.0f}/s")
    same = sum(1 for a, c in zip(addresses, cities, strict=True)
               if gazetteer.lookup(a) == gazetteer.lookup(c))
    print(f"  addresses resolved to the city their name alone gives: {same}/{len(addresses)}")
    gibberish = ["".join(rng.choice("bcdfghjkmnpqvwxz") for _ in range(9)) for _ in range(200)]
    print(
        f"not-found lookups (gibberish): {rate(gazetteer.lookup, gibberish, args.seconds):,.0f}/s"
    )


if __name__ == "__main__":
    main()
