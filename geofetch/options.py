"""The options of one run, shared by geocoding and fetching: :class:`RunOptions`.

Every value is checked when the object is made, so a bad option raises a
:class:`~geofetch.exceptions.UsageError` naming the option and the value before any
request is sent (``timeout=-1``, ``retries=None`` and ``workers=0`` never reach a
worker).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._version import __version__
from .exceptions import UsageError

#: The User-Agent geofetch sends unless told otherwise: its name and version.
DEFAULT_USER_AGENT = f"geofetch/{__version__} (+https://github.com/geofetch/geofetch)"

#: The executors a run can use: a thread pool (the default, for network-bound work),
#: a process pool (CPU-bound work), the calling thread alone, or a dask.distributed
#: cluster (many machines; the ``dask`` extra).
EXECUTORS = ("thread", "process", "serial", "dask")

#: What ``progress=`` accepts: ``True`` for a bar on stderr, or a callable given each result.
Progress = bool | Callable[[Any], None]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How one run goes: pool, rate limit, retries, timeout, cache, budget, progress.

    * ``executor``: ``"thread"`` (default), ``"process"``, ``"serial"`` or ``"dask"``.
    * ``workers``: pool size, at least 1 (default: 8 threads, or one process per CPU).
    * ``threads``: threads in each worker process, at least 1 (default 1); more than
      1 needs ``executor="process"`` or ``"dask"`` (each process then runs that many
      workers, all under the one rate limit, budget and per-host caps).
    * ``rate``: requests per second for the whole run, every thread and process
      together. ``None`` (default) means the default of the provider or task (google
      50/s, nominatim 1/s, offline and fetch none); ``0`` means no limit.
    * ``retries``: more attempts after the first for transient errors (default 3).
    * ``timeout``: seconds one request may take, connecting, headers and body
      together (default 10).
    * ``cache``: a SQLite file path, a cache object, or ``None``/``False`` for none.
    * ``max_requests``: the run's request budget, retries included (``None``: none).
    * ``max_throttled``: rate-limit answers in a row that stop the run as a spent
      quota does (default 20; ``None``: never). Each one halves the run's rate.
    * ``max_wait``: the longest ``Retry-After`` honoured, seconds (default 300); a
      longer one stops the run.
    * ``progress``: ``True`` for a bar on stderr, or a callable given each result.
    * ``gate``: ``redis://[user:password@]HOST[:PORT][/DB]``: keep the rate limit,
      budget and abort on that Redis server, shared by workers on every machine
      (``None``: this machine's memory). ``gate_name``: runs with the same name share
      one rate limit (``None``: the run's own).
    * ``scheduler``: ``tcp://HOST:PORT`` of a dask scheduler to run on (``"dask"``
      only; ``None``: a local cluster of ``workers`` processes x ``threads`` threads);
      ``client``: an existing ``distributed.Client`` instead. Either needs ``gate``.
    * ``chunk``: rows per dask task (``"dask"`` only; default: chosen by the executor).

    Raises :class:`~geofetch.exceptions.UsageError` for any value out of range.
    """

    executor: str = "thread"
    workers: int | None = None
    threads: int = 1
    rate: float | None = None
    retries: int = 3
    timeout: float = 10.0
    cache: Any = None
    max_requests: int | None = None
    max_throttled: int | None = 20
    max_wait: float = 300.0
    progress: Progress = False
    gate: str | None = None
    gate_name: str | None = None
    scheduler: str | None = None
    client: Any = None
    chunk: int | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UsageError(f"executor must be one of {', '.join(EXECUTORS)}, "
                             f"not {self.executor!r}")
        _check_int("workers", self.workers, minimum=1, optional=True)
        _check_int("threads", self.threads, minimum=1)
        if self.threads > 1 and self.executor in ("thread", "serial"):
            raise UsageError(f"threads={self.threads} runs threads inside worker processes: "
                             f"it needs executor='process' or 'dask', not {self.executor!r} (for "
                             "more threads, raise workers)")
        _check_int("retries", self.retries, minimum=0)
        _check_int("max_requests", self.max_requests, minimum=0, optional=True)
        _check_int("max_throttled", self.max_throttled, minimum=1, optional=True)
        _check_number("max_wait", self.max_wait, minimum=0.0, optional=False)
        _check_number("rate", self.rate, minimum=0.0, optional=True)
        _check_number("timeout", self.timeout, minimum=0.0, optional=False, above=True)
        if not (self.cache is None or self.cache is False
                or isinstance(self.cache, str | os.PathLike)
                or (hasattr(self.cache, "get") and hasattr(self.cache, "put"))):
            raise UsageError(f"cache must be a file path, a cache, None or False, "
                             f"not {self.cache!r}")
        if not (isinstance(self.progress, bool) or callable(self.progress)):
            raise UsageError(f"progress must be True, False or a callable, "
                             f"not {self.progress!r}")
        _check_cluster(self)


def _check_int(name: str, value: object, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a whole number" + (" or None" if optional else "")
        raise UsageError(f"{name} must be {kind} of at least {minimum}, not {value!r}")


def _check_number(name: str, value: object, *, minimum: float, optional: bool,
                  above: bool = False) -> None:
    if value is None and optional:
        return
    ok = (not isinstance(value, bool) and isinstance(value, int | float)
          and math.isfinite(value) and (value > minimum if above else value >= minimum))
    if not ok:
        bound = f"more than {minimum:g}" if above else f"{minimum:g} or more"
        kind = "a finite number" + (" or None" if optional else "")
        raise UsageError(f"{name} must be {kind}, {bound}, not {value!r}")


def _check_cluster(options: RunOptions) -> None:
    """The gate and dask options: a URL and name that can be used, and a remote
    cluster only with a gate every machine can reach."""
    _check_int("chunk", options.chunk, minimum=1, optional=True)
    if options.gate is not None:
        from .redis_url import check_gate_name, check_gate_url

        check_gate_url(options.gate)
        if importlib.util.find_spec("redis") is None:
            raise UsageError("--gate redis://... needs redis-py: pip install 'geofetch[dask]'")
        if options.gate_name is not None:
            check_gate_name(options.gate_name)
    elif options.gate_name is not None:
        raise UsageError("gate_name (--gate-name) needs a shared gate: give gate "
                         "(--gate redis://HOST:PORT/DB)")
    remote = options.scheduler is not None or options.client is not None
    if remote and options.executor != "dask":
        raise UsageError("scheduler and client (--scheduler) go with executor dask")
    if options.chunk is not None and options.executor != "dask":
        raise UsageError(f"chunk (--chunk) is rows per dask task: it goes with executor "
                         f"dask, not {options.executor!r}")
    if remote and options.gate is None:
        raise UsageError("a dask scheduler (--scheduler) runs workers on other machines, "
                         "which this machine's rate limit cannot hold: give "
                         "--gate redis://HOST:PORT/DB (or GEOFETCH_REDIS_URL)")
