"""Peak memory (RSS) of long runs, each in a fresh process.

    python benchmarks/bench_memory.py [--rows 1000000]

1. `geofetch geocode` (offline, thread executor) over a generated CSV of --rows rows.
2. `iter_geocode` over a --rows generator through the process executor (parent RSS).
3. A fully cached re-run of 100,000 rows through the google provider (rows/s).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

CITIES = ["Berlin", "Osaka", "Vien", "Zadar", "Reykjavik", "New York", "Dehil", "Bolognia"]


def run_measured(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its output with its peak RSS."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cached-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "places.csv")
        with open(source, "w", encoding="utf-8") as f:
            f.write("id,place\n")
            for i in range(args.rows):
                f.write(f"{i},{CITIES[i % len(CITIES)]} {i % 7 or ''}\n")
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, "-m", "geofetch", "geocode", source, "-o",
                        os.path.join(tmp, "out.csv"), "--no-progress"], check=True,
                       stderr=subprocess.DEVNULL)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        seconds = time.perf_counter() - started
        print(f"CLI offline, {args.rows:,} rows: {seconds:.1f} s "
              f"({args.rows / seconds:,.0f} rows/s), peak RSS {max(peak, before) / 1024:.0f} MB")

        print(run_measured(f"""
            import resource, time
            from geofetch import iter_geocode
            from tests.fakes import FakeProvider
            if __name__ == "__main__":
                t = time.perf_counter()
                n = sum(1 for _ in iter_geocode((f"p{{i}}" for i in range({args.rows})),
                                                provider=FakeProvider(), executor="process"))
                s = time.perf_counter() - t
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"iter_geocode, process executor, {{n:,}} items: {{s:.1f}} s, "
                      f"parent peak RSS {{rss:.0f}} MB")
        """))

        cached = os.path.join(tmp, "cached.csv")
        with open(cached, "w", encoding="utf-8") as f:
            f.write("place\n")
            for i in range(args.cached_rows):
                f.write(f"{CITIES[i % len(CITIES)]} {i}\n")
        cache = os.path.join(tmp, "cache.sqlite")
        print(run_measured(f"""
            import os, subprocess, sys, time
            from geofetch.server import LocalServer
            env = {{**os.environ, "GOOGLE_MAPS_API_KEY": "AIza-bench"}}
            cmd = [sys.executable, "-m", "geofetch", "geocode", {cached!r}, "-o", os.devnull,
                   "--provider", "google", "--rate", "0", "--workers", "32",
                   "--cache", {cache!r}, "--no-progress"]
            with LocalServer(latency=0.0, subprocess=True) as url:
                cmd += ["--base-url", url]
                subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
                t = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
                s = time.perf_counter() - t
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "geofetch", "geocode", {cached!r},
                                "-o", os.devnull, "--no-progress", "--provider", "offline"],
                               check=True, stderr=subprocess.DEVNULL)
                o = time.perf_counter() - t
            n = {args.cached_rows}
            print(f"fully cached re-run, {{n:,}} rows: {{s:.1f}} s ({{n / s:,.0f}} rows/s); "
                  f"same rows offline (CSV I/O + lookups): {{n / o:,.0f}} rows/s")
        """))


if __name__ == "__main__":
    main()
