"""How fast is ``geofetch serve``? Requests per second and requests in flight.

The server runs as ``python -m geofetch serve`` in its own process
(``LocalServer(subprocess=True)``), so the load generator does not share its GIL.
Two load generators:

* a built-in one, always available: several client processes, each driving many
  keep-alive connections with a small asyncio HTTP/1.1 client (one request at a
  time per connection, distinct city names in turn);
* ``wrk``, when it is on PATH (``apt-get install -y wrk``), for a second opinion.

Scenarios: zero-latency Google and Nominatim lookups (throughput), then a
``--latency`` run with ``--in-flight`` connections (concurrency: the server's own
``max_in_flight`` count is reported). Measurements only; nothing is asserted.

By default each client cycles through 2,500 names, so after the first round every
request is one the server has seen: its memos (the encoded answer, and h11's reading
of the request head) serve it. ``--unique N`` makes the first N requests of each
client distinct byte for byte (a ``&n=`` counter the server ignores; the query, so the
answer memo, is unchanged), which measures parsing every request head.

    python benchmarks/bench_server.py [--duration 5] [--processes 2] [--connections 32]
                                      [--latency 0.25] [--in-flight 512] [--no-wrk]
                                      [--unique N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from geofetch.bench import bench_names  # noqa: E402
from geofetch.server import GOOGLE_PATH, NOMINATIM_PATH, LocalServer  # noqa: E402


def request_bytes(
    host: str, port: int, api: str, names: list[str], unique: int = 0
) -> list[bytes]:
    """Pre-encoded keep-alive GET requests, one per name (``unique`` > 0: that many,
    the names in turn, each target made distinct by an ``&n=`` counter)."""
    if api == "google":
        targets = [f"{GOOGLE_PATH}?address={quote(n)}&key=bench" for n in names]
    else:
        targets = [f"{NOMINATIM_PATH}?q={quote(n)}&format=json" for n in names]
    if unique:
        targets = [f"{targets[k % len(targets)]}&n={k}" for k in range(unique)]
    return [
        f"GET {t} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: bench\r\n\r\n".encode()
        for t in targets
    ]


_CONTENT_LENGTH = re.compile(r"(?im)^content-length:\s*(\d+)")


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending one request at a time until the deadline."""

    def __init__(self, requests: list[bytes], offset: int, deadline: float, done: Any) -> None:
        self.requests = requests
        self.index = offset
        self.deadline = deadline
        self.done = done
        self.buffer = bytearray()
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.requests[self.index % len(self.requests)])
        self.index += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            found = _CONTENT_LENGTH.search(head)
            length = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.statuses[int(head.split(" ", 2)[1])] += 1
            self.latencies.append(time.perf_counter() - self.sent_at)
            if time.monotonic() < self.deadline:
                self.send()
            else:
                assert self.transport is not None
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _drive(
    url: str, api: str, names: list[str], connections: int, seconds: float, unique: int = 0
):
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = request_bytes(host, port, api, names, unique)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    protocols = []
    for i in range(connections):
        done = loop.create_future()
        # With --unique, connections start evenly apart, so none repeats another's.
        stride = len(requests) // connections if unique else 7919
        factory = functools.partial(_Connection, requests, i * stride, deadline, done)
        _, protocol = await loop.create_connection(factory, host, port)
        protocols.append(protocol)
    await asyncio.gather(*(p.done for p in protocols))
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for p in protocols:
        statuses.update(p.statuses)
        latencies.extend(p.latencies)
    return statuses, latencies


def client_process(
    url: str, api: str, names: list[str], connections: int, seconds: float, unique: int = 0
) -> tuple[dict[int, int], list[float]]:
    """One load-generating process: ``connections`` connections for ``seconds``."""
    statuses, latencies = asyncio.run(_drive(url, api, names, connections, seconds, unique))
    return dict(statuses), latencies


def python_load(
    url: str,
    api: str,
    names: list[str],
    processes: int,
    connections: int,
    seconds: float,
    unique: int = 0,
) -> dict[str, Any]:
    """Run the built-in load generator; return requests/s, statuses, latency percentiles."""
    per_process = max(1, connections // processes)
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        pool.submit(int).result()  # processes started before the clock runs
        started = time.perf_counter()
        futures = [
            pool.submit(
                client_process, url, api, names[i::processes], per_process, seconds, unique
            )
            for i in range(processes)
        ]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - started
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for s, lat in results:
        statuses.update(s)
        latencies.extend(lat)
    latencies.sort()
    total = sum(statuses.values())

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": total,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(total / elapsed),
        "statuses": dict(statuses),
        "p50_ms": round(pct(0.50), 2),
        "p95_ms": round(pct(0.95), 2),
        "connections": per_process * processes,
        "processes": processes,
    }


def wrk_load(url: str, connections: int, seconds: float, threads: int = 2) -> dict[str, Any]:
    """Run ``wrk`` against one URL; return its requests/s."""
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s*([\d.]+)", output)
    rps = float(found.group(1)) if found else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    return {
        "requests_per_second": round(rps),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "connections": connections,
        "threads": threads,
    }


def server_view(server: LocalServer) -> dict[str, Any]:
    """The server's own count of a run: total, busiest second, max in flight."""
    stats = server.stats()
    per_second = stats["per_second"]
    # The first and last seconds are partial; the middle ones are the steady state.
    full = list(per_second.values())[1:-1] or list(per_second.values())
    return {
        "total": stats["total"],
        "steady_per_second": round(sum(full) / len(full)) if full else 0,
        "max_in_flight": stats["max_in_flight"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=32, help="connections (throughput)")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds (concurrency run)")
    parser.add_argument("--in-flight", type=int, default=512, help="connections (concurrency)")
    parser.add_argument("--no-wrk", action="store_true", help="skip wrk even if installed")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--unique", type=int, default=0, metavar="N",
        help="each client's first N requests distinct (default 0: cycle through names)",
    )
    args = parser.parse_args(argv)

    names = bench_names(5000)
    have_wrk = shutil.which("wrk") is not None and not args.no_wrk
    report: dict[str, Any] = {"cpus": os.cpu_count(), "wrk": have_wrk, "runs": []}

    def record(name: str, client: dict[str, Any], server: dict[str, Any]) -> None:
        run = {"scenario": name, "client": client, "server": server}
        report["runs"].append(run)
        if not args.json:
            print(
                f"{name:<44} {client['requests_per_second']:>7} req/s (client)  "
                f"{server['steady_per_second']:>7} req/s (server, steady)  "
                f"max in flight {server['max_in_flight']:>4}  "
                + (
                    f"p50 {client['p50_ms']} ms p95 {client['p95_ms']} ms  "
                    if "p50_ms" in client
                    else ""
                )
                + f"{client.get('statuses', client.get('non_2xx'))}",
                flush=True,
            )

    # A fresh server per scenario keeps each one's counters separate.
    scenarios = [
        ("google, latency 0", "google", 0.0, args.connections),
        ("nominatim, latency 0", "nominatim", 0.0, args.connections),
        (f"google, latency {args.latency}s", "google", args.latency, args.in_flight),
    ]
    for name, api, latency, connections in scenarios:
        server = LocalServer(latency=latency, key="bench", subprocess=True)
        with server as url:
            client = python_load(
                url, api, names, args.processes, connections, args.duration, args.unique
            )
            record(f"python client: {name}, {connections} conns", client, server_view(server))
        if have_wrk:
            server = LocalServer(latency=latency, key="bench", subprocess=True)
            with server as url:
                path = (
                    f"{GOOGLE_PATH}?address=Berlin&key=bench"
                    if api == "google"
                    else f"{NOMINATIM_PATH}?q=Berlin&format=json"
                )
                client = wrk_load(url + path, connections, args.duration)
                record(f"wrk: {name}, {connections} conns", client, server_view(server))
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
