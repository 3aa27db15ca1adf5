"""Issue 14: the dask executor beside the thread and process executors, and the rate
accuracy of the Redis gate across dask worker processes.

    python benchmarks/bench_cluster.py [--rows 3000] [--latency 0.05] [--rates 20,50,100]
                                       [--seconds 8] [--only speed|rate|costs]

speed: ``--rows`` distinct places, google API, against ``geofetch serve`` in a child
       process answering after ``--latency`` s, no rate limit, no cache. Each line is
       one run in this process: the pool's start-up (entering the job: processes, a
       cluster), rows/s over the whole run (start-up included) and over the rows alone
       (``run``), and efficiency = rows/s / ideal, ideal = requests in flight /
       latency. The thread executor with 64 threads, the process executor with 16
       processes, and dask on a LocalCluster of 2 processes x 32 threads (64 in
       flight), chunks of 50, 25 (the default) and 1 row.
rate:  dask LocalCluster 2 processes x 8 threads, ``--rate R`` through the Redis gate
       (a real redis-server on loopback) and through the one-machine gate, against a
       loopback server answering after 50 ms: the most requests the server saw in any
       1 s window, and achieved / R over the run.
costs: the figures of the README's model: a Redis gate call as its caller sees it
       (acquire/s from 1 and 8 threads, no rate), Redis's own CPU per script call
       (``INFO commandstats``), and rows/s through one coordinator (20,000 offline
       rows, dask 2 processes x 2 threads, chunks of 50, no cache).
"""

from __future__ import annotations

import argparse
import logging
import time

import distributed

from geofetch import RunOptions
from geofetch.bench import bench_names, max_per_window
from geofetch.server import LocalServer
from geofetch.tasks.geocode import geocode_job
from geofetch.testing.redis import RedisServer
from geofetch.testing.servers import Reply, ScriptedServer

KEY = "AIza-bench-cluster"


def speed(rows: int, latency: float) -> None:
    configs = [
        ("thread", dict(executor="thread", workers=64), 64),
        ("process", dict(executor="process", workers=16), 16),
        ("dask 2x32 chunk 50", dict(executor="dask", workers=2, threads=32, chunk=50), 64),
        ("dask 2x32 chunk 25", dict(executor="dask", workers=2, threads=32, chunk=25), 64),
        ("dask 2x32 chunk 1", dict(executor="dask", workers=2, threads=32, chunk=1), 64),
    ]
    print(f"speed: {rows} rows, latency {latency * 1000:g} ms, google API against "
          "geofetch serve (child process)")
    print(f"{'executor':20} {'in flight':>9} {'start s':>7} {'rows/s':>8} {'efficiency':>10} "
          f"{'run rows/s':>10} {'run eff.':>8} {'ideal':>6} {'failed':>6}")
    server = LocalServer(latency=latency, subprocess=True)
    with server as url:
        for offset, (label, options, in_flight) in enumerate(configs):
            places = bench_names(rows, offset=offset * rows)
            opts = RunOptions(rate=0, cache=None, **options)  # type: ignore[arg-type]
            failed = 0
            started = time.perf_counter()
            with geocode_job(places, provider="google", key=KEY, base_url=url,
                             options=opts) as job:
                ready = time.perf_counter()
                for result in job:
                    failed += result.status == "failed"
                done = time.perf_counter()
            whole = rows / (done - started)
            run = rows / (done - ready)
            ideal = in_flight / latency
            print(f"{label:20} {in_flight:9d} {ready - started:7.2f} {whole:8.1f} "
                  f"{whole / ideal:10.1%} {run:10.1f} {run / ideal:8.1%} {ideal:6.0f} "
                  f"{failed:6d}", flush=True)


def rate_accuracy(rates: list[float], seconds: float) -> None:
    print(f"rate: dask LocalCluster 2 processes x 8 threads, ~{seconds:g} s per rate, "
          "50 ms answers")
    print(f"{'gate':12} {'rate':>5} {'requests':>8} {'max/1s window':>13} {'achieved/R':>10}")
    with RedisServer() as redis_url, \
            distributed.LocalCluster(n_workers=2, threads_per_worker=8, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        for gate in ("redis", "one-machine"):
            for rate in rates:
                count = int(rate * seconds) + 1
                with ScriptedServer(Reply.json([], delay=0.05)) as server:
                    if gate == "redis":
                        opts = RunOptions(executor="dask", client=client, rate=rate,
                                          gate=redis_url, cache=None)
                    else:
                        opts = RunOptions(executor="dask", workers=2, threads=8, rate=rate,
                                          cache=None)
                    with geocode_job([f"Place {i}" for i in range(count)],
                                     provider="nominatim", base_url=server.url,
                                     options=opts) as job:
                        for _ in job:
                            pass
                    arrivals = [request.at for request in server.requests]
                achieved = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
                print(f"{gate:12} {rate:5g} {len(arrivals):8d} "
                      f"{max_per_window(arrivals):13d} {achieved / rate:10.3f}", flush=True)


def costs() -> None:
    import threading

    import redis

    from geofetch.bench import bench_names
    from geofetch.core.redis_gate import RedisGate

    with RedisServer() as redis_url:
        gate = RedisGate(redis_url, rate=None)
        calls = 2000
        for threads in (1, 8):
            workers = [threading.Thread(target=lambda: [gate.acquire() for _ in range(calls)])
                       for _ in range(threads)]
            started = time.perf_counter()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            seconds = time.perf_counter() - started
            print(f"costs: Redis gate acquire from {threads} thread(s): "
                  f"{threads * calls / seconds:.0f}/s, {seconds / (threads * calls) * 1e6:.0f} us "
                  "each as the caller sees it")
        stats = redis.Redis.from_url(redis_url).info("commandstats")["cmdstat_evalsha"]
        print(f"costs: Redis CPU per script call: {stats['usec_per_call']:.1f} us "
              f"({stats['calls']} calls)")
        gate.close()
    places = bench_names(20000)
    opts = RunOptions(executor="dask", workers=2, threads=2, chunk=50, cache=None)
    with geocode_job(places, provider="offline", options=opts) as job:
        started = time.perf_counter()
        count = sum(1 for _ in job)
        seconds = time.perf_counter() - started
    print(f"costs: one coordinator, {count} offline rows on dask 2x2, chunk 50: "
          f"{count / seconds:.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rates", default="20,50,100")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--only", choices=("speed", "rate", "costs"))
    args = parser.parse_args()
    if args.only in (None, "speed"):
        speed(args.rows, args.latency)
    if args.only in (None, "rate"):
        rate_accuracy([float(r) for r in args.rates.split(",")], args.seconds)
    if args.only in (None, "costs"):
        costs()


if __name__ == "__main__":
    main()
