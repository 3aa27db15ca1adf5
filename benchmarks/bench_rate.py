"""Rate accuracy: per executor and rate, the most requests the server saw in any
one-second window, and achieved / requested rate over the run.

    python benchmarks/bench_rate.py [--rates 5,20,100] [--seconds 5]
"""

from __future__ import annotations

import argparse

from geofetch import geocode_many
from geofetch.bench import bench_names, max_per_window
from geofetch.server import LocalServer

KEY = "AIza-bench-rate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="5,20,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{'executor':8} {'rate':>5} {'requests':>8} {'max/1s window':>13} {'achieved/R':>10}")
    for executor, workers in (("thread", 16), ("process", 4)):
        for rate in (float(r) for r in args.rates.split(",")):
            n = int(rate * args.seconds) + 1
            server = LocalServer(latency=0.0, subprocess=True)
            with server as url:
                geocode_many(bench_names(n), provider="google", key=KEY, base_url=url,
                             executor=executor, workers=workers, rate=rate)
                arrivals = server.stats()["arrivals"]
            achieved = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
            print(f"{executor:8} {rate:5.0f} {len(arrivals):8d} {max_per_window(arrivals):13d} "
                  f"{achieved / rate:10.3f}")


if __name__ == "__main__":
    main()
