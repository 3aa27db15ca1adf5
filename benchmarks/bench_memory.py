"""Long runs: peak memory (RSS) and rows/s, each measured in a fresh process.

    python benchmarks/bench_memory.py [--rows 1000000] [--cached-rows 100000] [--only NAME]

- cli:    `geofetch geocode` (offline, thread executor) over a generated CSV of --rows rows
- distinct: --rows DISTINCT places (``zq0``, ``zq1``, ...: each its own query and its own
          cache entry) through the CLI, offline and with the google provider against
          `geofetch serve` (a child process, latency 0, 32 threads, the default SQLite
          cache): the geofetch process's own peak RSS, read by itself at exit
- iter:   `iter_geocode` over a --rows generator through the process executor (parent RSS)
- cached: a fully cached re-run of --cached-rows rows through the google provider,
          beside the same rows through the offline provider (CSV I/O + lookups)
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

from geofetch.bench import bench_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITIES = ["Berlin", "Osaka", "Vien", "Zadar", "Reykjavik", "New York", "Dehil", "Bolognia"]


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (the project on its path); return its output."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, check=True, env=env)
    return done.stdout.strip()


def measure_cli(tmp: str, rows: int) -> str:
    source = os.path.join(tmp, "places.csv")
    with open(source, "w", encoding="utf-8") as f:
        f.write("id,place\n")
        for i in range(rows):
            f.write(f"{i},{CITIES[i % len(CITIES)]} {i % 7 or ''}\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "geofetch", "geocode", source, "-o",
                    os.path.join(tmp, "out.csv"), "--no-progress"], check=True,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return (f"cli: offline, {rows:,} rows: {seconds:.1f} s ({rows / seconds:,.0f} rows/s), "
            f"peak RSS {peak:.0f} MB")


#: Runs the CLI in this interpreter and reports its own peak RSS (not the server's).
_CLI_WITH_RSS = """
import resource, sys, time
from geofetch.cli.main import run_cli
t = time.perf_counter()
status = run_cli(sys.argv[1:])
s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{status} {s:.1f} {rss:.0f}")
"""


def measure_distinct(tmp: str, rows: int) -> str:
    source = os.path.join(tmp, "distinct.txt")
    with open(source, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(f"zq{i}\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "GOOGLE_MAPS_API_KEY": "AIza-bench"}
    lines = []
    for provider in ("offline", "google"):
        cmd = [sys.executable, "-c", _CLI_WITH_RSS, "geocode", source, "-o",
               os.path.join(tmp, f"distinct-{provider}.csv"), "--no-progress",
               "--provider", provider]
        server = None
        if provider == "google":
            from geofetch.server import LocalServer

            server = LocalServer(latency=0.0, subprocess=True)
            cmd += ["--base-url", server.start(), "--rate", "0", "--workers", "32",
                    "--cache", os.path.join(tmp, "distinct.sqlite")]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        finally:
            if server is not None:
                server.stop()
        status, seconds, rss = done.stdout.split()
        lines.append(f"distinct: {provider}, {rows:,} distinct places through the CLI: "
                     f"{float(seconds):.0f} s ({rows / float(seconds):,.0f} rows/s), "
                     f"exit {status}, peak RSS {rss} MB")
    return "\n".join(lines)


def measure_iter(rows: int) -> str:
    return python(f"""
        import resource, time
        from geofetch import iter_geocode
        from tests.fakes import FakeProvider
        if __name__ == "__main__":
            t = time.perf_counter()
            n = sum(1 for _ in iter_geocode((f"p{{i}}" for i in range({rows})),
                                            provider=FakeProvider(), executor="process"))
            s = time.perf_counter() - t
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"iter: process executor, {{n:,}} items: {{s:.1f}} s "
                  f"({{n / s:,.0f}} items/s), parent peak RSS {{rss:.0f}} MB")
    """)


def measure_cached(tmp: str, rows: int) -> str:
    cached = os.path.join(tmp, "cached.csv")
    names = bench_names(5000)  # exact gazetteer names: cheap for the server
    with open(cached, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["place"])
        for i in range(rows):
            writer.writerow([names[i % len(names)]])
    cache = os.path.join(tmp, "cache.sqlite")
    return python(f"""
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
        subprocess.run([sys.executable, "-m", "geofetch", "geocode", {cached!r}, "-o",
                        os.devnull, "--no-progress"], check=True, stderr=subprocess.DEVNULL)
        o = time.perf_counter() - t
        n = {rows}
        print(f"cached: fully cached re-run, {{n:,}} rows: {{s:.1f}} s ({{n / s:,.0f}} rows/s); "
              f"the same rows offline: {{o:.1f}} s ({{n / o:,.0f}} rows/s)")
    """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cached-rows", type=int, default=100_000)
    parser.add_argument("--only", choices=("cli", "distinct", "iter", "cached"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "cli"):
            print(measure_cli(tmp, args.rows), flush=True)
        if args.only in (None, "distinct"):
            print(measure_distinct(tmp, args.rows), flush=True)
        if args.only in (None, "iter"):
            print(measure_iter(args.rows), flush=True)
        if args.only in (None, "cached"):
            print(measure_cached(tmp, args.cached_rows), flush=True)


if __name__ == "__main__":
    main()
