"""``geofetch bench``: rows/s of each executor × pool size (see :mod:`geofetch.bench`)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections.abc import Callable
from typing import IO, Any

from ..bench import (
    BENCH_KEY,
    BENCH_PROVIDERS,
    DEFAULT_LATENCY_SECONDS,
    BenchReport,
    BenchRow,
    plot_available,
    plot_report,
    run_bench,
)
from ..options import EXECUTORS
from .argtypes import non_negative_float, positive_int
from .env import Environment, ExitStatus

FORMATS = ("table", "csv", "json")

#: Table columns: header, BenchRow field, how to show it.
_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("executor", "executor", str),
    ("workers", "workers", str),
    ("rows/s", "rows_per_second", lambda v: f"{v:.1f}"),
    ("ideal", "ideal", lambda v: f"{v:.1f}"),
    ("efficiency", "efficiency", lambda v: f"{v:.1%}"),
    ("speedup", "speedup", lambda v: f"{v:.2f}x"),
    ("p50 ms", "p50_ms", lambda v: f"{v:.1f}"),
    ("p95 ms", "p95_ms", lambda v: f"{v:.1f}"),
    ("max ms", "max_ms", lambda v: f"{v:.1f}"),
    ("startup ms", "startup_ms", lambda v: f"{v:.0f}"),
    ("in flight", "in_flight", str),
    ("failures", "failures", str),
)


def _list_of(convert: Callable[[str], Any], name: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"give at least one {name}")
        return list(dict.fromkeys(convert(item) for item in items))

    return parse


def _executor(text: str) -> str:
    if text not in EXECUTORS:
        raise argparse.ArgumentTypeError(
            f"unknown executor {text!r}; choose from: {', '.join(EXECUTORS)}")
    return text


def register(subparsers: Any) -> None:
    """Add the ``bench`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "bench",
        help="compare executors and pool sizes against a server of known latency",
        description=(
            "Start the local server in the background with --latency (and --rate as its "
            "rate limit), geocode --requests distinct places through the google provider "
            "for every executor × workers pair, and report rows/s, p50/p95/max request "
            "latency, failures, speedup over the same executor's 1-thread run at the "
            "smallest pool (fewest --threads when 1 is not swept) and efficiency = rows/s ÷ "
            "min(rate, workers / latency). Pool start-up is inside the measured time. "
            "Exit status 1 if any row failed."
        ),
    )
    parser.add_argument("--workers", type=_list_of(positive_int, "pool size"),
                        default=[1, 2, 4, 8, 16], metavar="N,N,...",
                        help="pool sizes to try (default: 1,2,4,8,16)")
    parser.add_argument("--executor", type=_list_of(_executor, "executor"),
                        default=["thread", "process"], metavar="KIND,...",
                        help="executors to try: thread, process, serial, dask (default: "
                             "thread,process)")
    parser.add_argument("--threads", type=_list_of(positive_int, "thread count"),
                        default=[1], metavar="N,N,...",
                        help="threads in each worker process to try, for the process "
                             "executor (default: 1)")
    parser.add_argument("--requests", type=positive_int, default=200, metavar="N",
                        help="distinct places geocoded per pair (default 200)")
    parser.add_argument("--latency", type=non_negative_float, metavar="SECONDS",
                        help=f"seconds the local server waits before each answer "
                             f"(default {DEFAULT_LATENCY_SECONDS}); with --base-url, that "
                             "server's known latency, for the ideal")
    parser.add_argument("--rate", type=non_negative_float, default=0.0, metavar="PER_SECOND",
                        help="rate limit of the run and the local server (default 0: none)")
    parser.add_argument("--provider", choices=BENCH_PROVIDERS, default="google",
                        help="google (default), nominatim, or offline: the gazetteer alone, "
                             "CPU-bound, no server")
    parser.add_argument("--base-url", metavar="URL",
                        help="measure this server instead of starting the local one")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also write a chart of rows/s against workers (needs matplotlib)")
    parser.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                        help="run each pair N times and keep the fastest run (default 1)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (default), csv or json, on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, env: Environment) -> int:
    """Run the sweep; write the report to stdout and a progress line per pair to stderr."""
    if args.plot and not plot_available():
        env.stderr.write("geofetch: error: --plot needs matplotlib: "
                         "pip install 'geofetch[plot]'\n")
        return ExitStatus.USAGE
    latency = args.latency
    if latency is None and args.base_url is None:
        latency = DEFAULT_LATENCY_SECONDS
    key = BENCH_KEY
    if args.base_url and args.provider == "google":
        key = os.environ.get("GOOGLE_MAPS_API_KEY") or BENCH_KEY

    def progress(row: BenchRow) -> None:
        env.stderr.write(progress_line(row) + "\n")
        env.stderr.flush()

    report = run_bench(workers=args.workers, executors=args.executor, requests=args.requests,
                       latency_seconds=latency, rate=args.rate, provider=args.provider,
                       base_url=args.base_url, key=key, progress=progress,
                       repeat=args.repeat, threads=args.threads)
    write_report(report, args.format, env.stdout)
    for line in notes(report):
        env.stderr.write(f"bench: {line}\n")
    if args.plot:
        try:
            plot_report(report, args.plot)
        except OSError as exc:
            env.stderr.write(f"geofetch: error: cannot write {args.plot}: {exc.strerror}\n")
            return ExitStatus.USAGE
        env.stderr.write(f"bench: chart written to {args.plot}\n")
    failed = any(row.failures for row in report.rows)
    return ExitStatus.FAILED_ROWS if failed else ExitStatus.OK


def progress_line(row: BenchRow) -> str:
    """``bench: thread × 4 workers: 200 rows in 2.61 s, 76.6 rows/s (95.8% of ideal)``."""
    ideal = f" ({row.efficiency:.1%} of ideal)" if row.efficiency is not None else ""
    threads = f" × {row.threads} threads" if row.threads > 1 else ""
    failed = f", {row.failures} failed (first: {row.first_error})" if row.failures else ""
    return (f"bench: {row.executor} × {row.workers} workers{threads}: {row.rows} rows in "
            f"{row.seconds:.2f} s, {row.rows_per_second:.1f} rows/s{ideal}, "
            f"p50 {row.p50_ms:.1f} ms{failed}")


def write_report(report: BenchReport, fmt: str, stream: IO[str]) -> None:
    """Write ``report`` as an aligned ``table``, ``csv`` or ``json``."""
    if fmt == "json":
        json.dump(_json_safe(report.as_dict()), stream, indent=2)
        stream.write("\n")
    elif fmt == "csv":
        rows = [row.as_dict() for row in report.rows]
        fields = list(BenchRow.__dataclass_fields__)
        writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if _missing(v) else v for k, v in row.items()})
    else:
        stream.write(format_table(report))


def format_table(report: BenchReport) -> str:
    """An aligned text table, one line per pair, ``n/a`` where a value has no meaning;
    a ``threads`` column after ``workers`` when a row ran more than one."""
    columns = _COLUMNS
    if any(row.threads > 1 for row in report.rows):
        columns = (*_COLUMNS[:2], ("threads", "threads", str), *_COLUMNS[2:])
    cells = [[header for header, _, _ in columns]]
    for row in report.rows:
        values = row.as_dict()
        cells.append(["n/a" if _missing(values[name]) else show(values[name])
                      for _, name, show in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines) + "\n"


#: CPU steal from this share up is worth a warning under the table.
STEAL_NOTICE = 0.02


def notes(report: BenchReport) -> list[str]:
    """Remarks for stderr: how many runs each row is the best of, and the CPU time
    the machine's hypervisor took (a shared VM's noise) if it was noticeable."""
    lines = []
    if report.repeat > 1:
        slowest = [row.slowest_rows_per_second / row.rows_per_second for row in report.rows
                   if row.slowest_rows_per_second and row.rows_per_second]
        spread = f"; the slowest run was within {1 - min(slowest):.0%}" if slowest else ""
        lines.append(f"each row: the fastest of {report.repeat} runs{spread}")
    steal = [row.cpu_steal for row in report.rows if row.cpu_steal is not None]
    if steal and max(steal) >= STEAL_NOTICE:
        lines.append(f"cpu steal: the hypervisor took up to {max(steal):.0%} of this machine's "
                     "CPU during a run; rows/s may be low by about as much")
    return lines


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if _missing(value) else value
