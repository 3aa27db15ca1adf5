"""``geofetch bench``: how many rows per second each executor and pool size achieves.

One sweep, the same for every executor × workers pair::

    distinct city names ─► reset server ─► geocode_job(cache=None) ─► results
      (fresh slice per pair)   (counters)      (timed: pool start-up included)
                                                           │ per-row elapsed
    rows/s, p50/p95/max latency, failures, startup ◄───────┘
    then per executor: speedup over its 1-thread run at its smallest pool, and
    efficiency = rows/s ÷ ideal,  ideal = min(rate, workers × threads / latency)

``threads`` (the process executor's ``--threads``) multiplies each process pair
by the threads in each process: ``process × 2 workers × 64 threads`` is 128
workers under one rate limit.

Network work goes to a local server (``geofetch serve`` in a child process, so
the client does not share its GIL) that answers every request ``latency`` seconds
late: a worker can do at most ``1 / latency`` rows per second, so ``workers``
workers at most ``workers / latency``, and the rate limit caps that. The offline
provider runs the same sweep on the gazetteer alone, with each name misspelled
(``Berlinn``) so every lookup takes the fuzzy path, about 8 ms of CPU: CPU-bound
work, where the GIL caps threads and processes use every core. It has no ideal.

A shared machine is noisy: ``repeat`` runs each pair several times and keeps the
fastest run, and every run records the CPU share the machine's hypervisor took
meanwhile (``cpu_steal``, from Linux's ``/proc/stat``), which on a cloud VM can
reach a tenth and shows up directly as lost rows/s.

The arithmetic (:func:`percentile`, :func:`ideal_rate`, :func:`summarize`) is pure
and tested on fixed timings; :func:`run_bench` measures; :func:`plot_report`
draws the chart (matplotlib, imported only when called).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .exceptions import UsageError
from .models import FAILED
from .normalize import normalize_query
from .options import EXECUTORS, RunOptions

__all__ = [
    "BENCH_KEY",
    "BenchReport",
    "BenchRow",
    "Measurement",
    "bench_names",
    "cpu_times",
    "max_per_window",
    "ideal_rate",
    "measure",
    "misspell",
    "percentile",
    "plot_report",
    "run_bench",
    "steal_between",
    "summarize",
]

#: A key for the local server, which checks none (Google's own keys start with ``AIza``).
BENCH_KEY = "AIzaSy-geofetch-bench-local-server-key"
BENCH_PROVIDERS = ("google", "nominatim", "offline")
DEFAULT_LATENCY_SECONDS = 0.1


# ------------------------------------------------------------------ the arithmetic


@dataclass(frozen=True)
class Measurement:
    """What one executor × workers run observed.

    ``seconds`` is the wall time of the whole run (pool start-up and shutdown
    included); ``latencies`` the per-row seconds (retries included); ``failures``
    the rows whose status is ``failed``; ``startup_seconds`` the time to the first
    result; ``requests`` the HTTP requests sent; ``in_flight`` the most requests
    the server held at once (``None`` when no local server); ``first_error`` the
    ``error`` of the first failed row. With ``runs`` > 1 this is the fastest of that
    many runs, and ``slowest_rows_per_second`` the slowest's rows/s. ``cpu_steal``
    is the fraction of the machine's CPU time its hypervisor took during this run
    (``None`` where the system does not say).
    """

    executor: str
    workers: int
    seconds: float
    latencies: tuple[float, ...]
    failures: int = 0
    startup_seconds: float = 0.0
    requests: int = 0
    in_flight: int | None = None
    first_error: str | None = None
    runs: int = 1
    slowest_rows_per_second: float | None = None
    cpu_steal: float | None = None
    threads: int = 1

    @property
    def rows(self) -> int:
        """Rows geocoded (ok or not)."""
        return len(self.latencies)


@dataclass(frozen=True)
class BenchRow:
    """One line of the report; times in milliseconds, rates in rows per second."""

    executor: str
    workers: int
    rows: int
    seconds: float
    rows_per_second: float
    ideal: float | None
    efficiency: float | None
    speedup: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    startup_ms: float
    in_flight: int | None
    requests: int
    failures: int
    first_error: str | None = None
    runs: int = 1
    slowest_rows_per_second: float | None = None
    cpu_steal: float | None = None
    threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values (for csv and json)."""
        return asdict(self)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0 to 1) quantile, interpolated between closest ranks.

    The same as ``numpy.percentile(values, 100 * fraction)``; NaN for no values.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ideal_rate(workers: int, latency_seconds: float | None, rate: float | None) -> float | None:
    """Rows per second if every worker were always waiting on the server:
    ``min(rate, workers / latency_seconds)``.

    ``rate`` None or 0 means no limit. ``None`` (no ideal) when the latency is
    unknown (``None``) or zero with no rate limit.
    """
    if latency_seconds is None:
        return None
    bounds = []
    if latency_seconds > 0:
        bounds.append(workers / latency_seconds)
    if rate:
        bounds.append(rate)
    return min(bounds) if bounds else None


def summarize(
    measurements: Iterable[Measurement],
    latency_seconds: float | None,
    rate: float | None,
) -> list[BenchRow]:
    """Report rows, in the order given: speedup over one base run per executor, and
    efficiency = rows/s ÷ :func:`ideal_rate` of ``workers × threads`` (``None``
    without an ideal).

    The base of an executor is its run with the fewest threads per process (1 when
    there is one) at the smallest pool: ``process × 2 workers × 16 threads`` is
    measured against ``process × 2 workers × 1 thread``, so a row shows what its
    threads and its workers together bring, as one scale for the executor."""
    measured = list(measurements)
    base: dict[str, float] = {}
    for m in sorted(measured, key=lambda m: (m.threads, m.workers)):
        base.setdefault(m.executor, _rows_per_second(m))
    rows = []
    for m in measured:
        speed = _rows_per_second(m)
        first = base[m.executor]
        ideal = ideal_rate(m.workers * m.threads, latency_seconds, rate)
        rows.append(BenchRow(
            executor=m.executor,
            workers=m.workers,
            rows=m.rows,
            seconds=m.seconds,
            rows_per_second=speed,
            ideal=ideal,
            efficiency=speed / ideal if ideal else None,
            speedup=speed / first if first else math.nan,
            p50_ms=percentile(m.latencies, 0.50) * 1000,
            p95_ms=percentile(m.latencies, 0.95) * 1000,
            max_ms=max(m.latencies, default=math.nan) * 1000,
            startup_ms=m.startup_seconds * 1000,
            in_flight=m.in_flight,
            requests=m.requests,
            failures=m.failures,
            first_error=m.first_error,
            runs=m.runs,
            slowest_rows_per_second=m.slowest_rows_per_second,
            cpu_steal=m.cpu_steal,
            threads=m.threads,
        ))
    return rows


def _rows_per_second(m: Measurement) -> float:
    return m.rows / m.seconds if m.seconds > 0 else math.nan


# ------------------------------------------------------------------ the measurement


def bench_names(count: int, offset: int = 0) -> list[str]:
    """``count`` distinct city names from the gazetteer, starting ``offset`` names in.

    Own names only (an exact, cheap lookup for the server and the offline
    provider), most populous first; the list wraps around when it runs out.
    """
    names = _all_names()
    if count > len(names):
        raise UsageError(f"at most {len(names)} distinct places can be asked, not {count}")
    start = offset % len(names)
    chosen = list(names[start:start + count])
    return chosen + list(names[:count - len(chosen)])


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) CPU time of the whole machine in clock ticks, from Linux's
    ``/proc/stat``; ``None`` elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:9]]  # user .. steal; guest is inside user
    return ticks[7], sum(ticks)


def steal_between(before: tuple[int, int] | None,
                  after: tuple[int, int] | None) -> float | None:
    """The fraction of CPU time the hypervisor took between two :func:`cpu_times`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def max_per_window(arrivals: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals (monotonic seconds) in any half-open ``window``-second span."""
    ordered = sorted(arrivals)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def misspell(place: str) -> str:
    """``Berlin`` -> ``Berlinn``: no exact match, so the gazetteer's fuzzy search
    runs (milliseconds of CPU) and still finds the city."""
    return place + place[-1]


@functools.lru_cache(maxsize=1)
def _all_names() -> tuple[str, ...]:
    from .providers.offline import Gazetteer

    # A comma would make the name read as "City, Country" qualifiers. Names equal
    # once normalised ("Leon", "LEON") would be asked once, so keep the first only.
    names: dict[str, str] = {}
    for name in Gazetteer.load().names():
        if "," not in name and name.strip():
            names.setdefault(normalize_query(name), name)
    return tuple(names.values())


def measure(
    places: Sequence[str],
    *,
    executor: str,
    workers: int,
    threads: int = 1,
    provider: str = "google",
    rate: float | None = 0,
    base_url: str | None = None,
    key: str | None = None,
) -> Measurement:
    """Geocode ``places`` once, with no cache, and time it.

    The clock starts before the pool is built, so process start-up and the
    pickling of every task and result are inside ``seconds``.
    """
    from .tasks.geocode import geocode_job

    options: dict[str, Any] = {}
    if provider != "offline":
        options = {"base_url": base_url, "key": key if provider == "google" else None}
    job = geocode_job(places, provider=provider, **options,
                      options=RunOptions(executor=executor, workers=workers, threads=threads,
                                         rate=rate or 0))
    latencies: list[float] = []
    errors: list[str] = []
    first: float | None = None
    started = time.perf_counter()
    for result in job:
        if first is None:
            first = time.perf_counter() - started
        latencies.append(result.elapsed)
        if result.status == FAILED:
            errors.append(result.error or "")
    seconds = time.perf_counter() - started
    return Measurement(executor, workers, seconds, tuple(latencies), len(errors),
                       first or 0.0, job.requests, first_error=errors[0] if errors else None,
                       threads=threads)


@dataclass
class BenchReport:
    """A sweep's rows and the conditions they were measured under."""

    rows: list[BenchRow]
    provider: str
    requests: int
    latency_seconds: float | None
    rate: float | None
    target: str  # "local server", the user's URL, or "gazetteer"
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    repeat: int = 1

    def as_dict(self) -> dict[str, Any]:
        """The report as plain values (for json)."""
        return {
            "provider": self.provider,
            "target": self.target,
            "requests": self.requests,
            "latency_seconds": self.latency_seconds,
            "rate": self.rate,
            "cpus": self.cpus,
            "repeat": self.repeat,
            "rows": [row.as_dict() for row in self.rows],
        }


def run_bench(
    *,
    workers: Sequence[int] = (1, 2, 4, 8, 16),
    executors: Sequence[str] = ("thread", "process"),
    requests: int = 200,
    latency_seconds: float | None = DEFAULT_LATENCY_SECONDS,
    rate: float | None = 0,
    provider: str = "google",
    base_url: str | None = None,
    key: str | None = None,
    progress: Callable[[BenchRow], None] | None = None,
    repeat: int = 1,
    threads: Sequence[int] = (1,),
) -> BenchReport:
    """Measure every executor × workers pair, smallest pool first; return the report.

    Each pair runs ``repeat`` times, on fresh places each time, and the fastest run
    is kept (as ``timeit`` keeps the best: on a shared machine the slower runs are
    the disturbed ones); its row also gives the slowest run's rows/s.

    Without ``base_url``, network providers go to a local server started here in
    a child process, answering ``latency_seconds`` late and refusing more than
    ``rate`` requests per second (0 or None: no limit); ``rate`` also bounds the
    client. With ``base_url``, that server is measured and ``latency_seconds``
    (its known latency, or None) only feeds the ideal. ``progress`` sees each
    row as it is measured (its speedup and efficiency already final). ``threads``:
    the threads in each worker process to try, for the process and dask executors
    (the others run once, with none).
    """
    _check(workers, executors, requests, provider, base_url)
    if repeat < 1:
        raise UsageError(f"repeat must be at least 1, not {repeat}")
    if not threads or any(t < 1 for t in threads):
        raise UsageError(f"threads must be at least 1, not {list(threads)}")
    workers = sorted(set(workers))
    executors = list(dict.fromkeys(executors))
    if provider == "offline":
        latency_seconds, rate, target = None, None, "gazetteer"
    else:
        target = base_url or "local server"
        key = key or BENCH_KEY
    server = None
    if provider != "offline" and base_url is None:
        from .server import LocalServer

        server = LocalServer(latency=latency_seconds or 0.0, rate_limit=rate or None,
                             subprocess=True)
        base_url = server.start()
    try:
        if "process" in executors:
            _warm_up_process_start()
        measured: list[Measurement] = []
        rows: list[BenchRow] = []
        pairs = [(kind, count) for kind in executors
                 for count in (sorted(set(threads)) if kind in ("process", "dask") else [1])]
        for kind, count in pairs:
            for size in workers:
                runs: list[Measurement] = []
                for _ in range(repeat):
                    places = bench_names(requests, offset=(len(measured) * repeat + len(runs))
                                         * requests)
                    if provider == "offline":
                        places = [misspell(place) for place in places]
                    if server is not None:
                        server.reset()
                    before = cpu_times()
                    m = measure(places, executor=kind, workers=size, threads=count,
                                provider=provider, rate=rate, base_url=base_url, key=key)
                    m = replace(m, cpu_steal=steal_between(before, cpu_times()))
                    if server is not None:
                        m = replace(m, in_flight=server.stats()["max_in_flight"])
                    runs.append(m)
                speeds = [_rows_per_second(run) for run in runs]
                best = runs[speeds.index(max(speeds))]
                measured.append(replace(best, runs=repeat, slowest_rows_per_second=min(speeds)))
                rows = summarize(measured, latency_seconds, rate)
                if progress is not None:
                    progress(rows[-1])
    finally:
        if server is not None:
            server.stop()
    return BenchReport(rows, provider, requests, latency_seconds, rate or None, target,
                       repeat=repeat)


def _warm_up_process_start() -> None:
    """Start the forkserver once, untimed: it outlives every pool, so charging it
    to whichever pool ran first would skew that pool's numbers. Each pool's own
    start-up (a process per worker, imports, the pickled worker) stays timed."""
    measure(["Berlin"], executor="process", workers=1, provider="offline")


def _check(workers: Sequence[int], executors: Sequence[str], requests: int, provider: str,
           base_url: str | None) -> None:
    if not workers or any(w < 1 for w in workers):
        raise UsageError(f"workers must be at least 1, not {list(workers)}")
    unknown = [e for e in executors if e not in EXECUTORS]
    if not executors or unknown:
        raise UsageError(f"unknown executor {unknown[0] if unknown else ''!r}; "
                         f"choose from: {', '.join(EXECUTORS)}")
    if requests < 1:
        raise UsageError(f"requests must be at least 1, not {requests}")
    if provider not in BENCH_PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}; choose one of: "
                         f"{', '.join(BENCH_PROVIDERS)}")
    if provider == "offline" and base_url is not None:
        raise UsageError("--base-url needs a network provider (google or nominatim), "
                         "not offline")


# ------------------------------------------------------------------------ the chart


def plot_available() -> bool:
    """True when matplotlib can be imported (the ``plot`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_report(report: BenchReport, path: str) -> None:
    """Write a PNG chart of rows/s against workers, one line per executor, and the
    ideal ``min(rate, workers / latency)`` dashed (matplotlib's Agg backend)."""
    if not plot_available():
        raise UsageError("--plot needs matplotlib: pip install 'geofetch[plot]'")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, LogLocator, NullLocator, ScalarFormatter

    figure = Figure(figsize=(7.5, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    sizes = sorted({row.workers for row in report.rows})
    styles = {"thread": ("C0", "o"), "process": ("C1", "s"), "serial": ("C2", "^")}
    for kind, threads in dict.fromkeys((row.executor, row.threads) for row in report.rows):
        mine = sorted((r for r in report.rows if (r.executor, r.threads) == (kind, threads)),
                      key=lambda r: r.workers)
        color, marker = styles.get(kind, (None, "o")) if threads == 1 else (None, "D")
        label = f"{kind} executor" + (f" × {threads} threads" if threads > 1 else "")
        axes.plot([r.workers for r in mine], [r.rows_per_second for r in mine],
                  marker=marker, color=color, linewidth=2, label=label)
    ideals = [ideal_rate(w, report.latency_seconds, report.rate) for w in sizes]
    if all(i is not None for i in ideals):
        axes.plot(sizes, [float(i or 0) for i in ideals], linestyle="--", color="0.4",
                  linewidth=1.2, label=_ideal_label(report))
    log = len(sizes) > 1 and sizes[-1] / sizes[0] >= 4
    if log:
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.xaxis.set_major_locator(FixedLocator(sizes))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_major_formatter(ScalarFormatter())
        axes.yaxis.set_minor_formatter(ScalarFormatter())
    axes.set_xlabel("workers (pool size)")
    axes.set_ylabel("throughput (rows/s)")
    axes.set_title(_title(report))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
    figure.savefig(path, format="png")


def _ideal_label(report: BenchReport) -> str:
    latency = report.latency_seconds or 0.0
    if report.rate:
        return f"ideal: min({report.rate:g}/s, workers ÷ {latency:g} s)"
    return f"ideal: workers ÷ {latency:g} s"


def _title(report: BenchReport) -> str:
    rate = f"rate limit {report.rate:g}/s" if report.rate else "no rate limit"
    if report.provider == "offline":
        where = "offline gazetteer (CPU-bound)"
    elif report.latency_seconds is not None:
        where = f"{report.provider} API, {report.latency_seconds * 1000:g} ms latency"
    else:
        where = f"{report.provider} API at {report.target}"
    runs = f", fastest of {report.repeat} runs" if report.repeat > 1 else ""
    return (f"geofetch bench: {where}, {rate}\n"
            f"{report.requests} distinct places per point{runs}, {report.cpus} CPUs")
