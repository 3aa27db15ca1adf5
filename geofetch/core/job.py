"""A job: one run of geocoding or fetching, from queries to ordered results.

It wires the pieces together, the same for every kind of work::

    queries ─► validate ─► cache / dedup ─► engine (executor, workers) ─► results
                                 ▲            each request: gate (rate, budget, abort)
                                 └──── fresh ok / not_found answers are stored

What differs between geocoding and fetching (how a query is checked, what a worker
does, how a result is cached) is a :class:`Work` object; nothing else differs.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from ..cache import CacheEntry, MemoryCache, SQLiteCache
from ..exceptions import RunAborted, describe
from ..models import STATUSES
from ..redact import redact
from .engine import Plan, Run
from .executors import WorkerFactory, make_executor
from .ratelimit import RequestGate
from .retry import RetryPolicy

R = TypeVar("R")


class Work(Protocol[R]):
    """What a kind of work (geocode, fetch) supplies to a :class:`Job`."""

    namespace: str
    uses_network: bool
    cacheable: bool
    secrets: tuple[str, ...]

    def invalid(self, query: str) -> R | None:
        """The ``invalid`` result for a query that cannot be asked, else None."""

    def key(self, query: str) -> str:
        """The query as the cache and in-run deduplication see it."""

    def failed(self, query: str, error: str) -> R:
        """A ``failed`` result carrying ``error``."""

    def from_cache(self, query: str, entry: CacheEntry) -> R:
        """The result rebuilt from a cache entry."""

    def to_cache(self, result: R) -> CacheEntry | None:
        """The entry to store for a fresh result, or None to store nothing."""

    def for_query(self, result: R, query: str) -> R:
        """A shared result, as the result of this row's own query text."""

    def worker_factory(self, gate: RequestGate | None, policy: RetryPolicy,
                       timeout: float) -> WorkerFactory:
        """A picklable callable that builds one worker's task function."""


class Job(Generic[R]):
    """Iterate a job for its results, in input order, one per query.

    ``keep_raw=False`` skips decoding cached provider answers (the CLI writes none).
    After (or during) iteration: ``counts`` per status, ``aborted`` (the error that
    stopped the run, if any), ``elapsed`` seconds, ``requests`` sent.
    """

    def __init__(
        self,
        queries: Iterable[str],
        work: Work[R],
        *,
        executor: str = "thread",
        workers: int | None = None,
        rate: float | None = None,
        retries: int = 3,
        timeout: float = 10.0,
        cache: MemoryCache | SQLiteCache | None = None,
        max_requests: int | None = None,
        progress: Callable[[R], None] | None = None,
        window: int | None = None,
        keep_raw: bool = True,
    ) -> None:
        self.work = work
        self.keep_raw = keep_raw
        self.queries = queries
        self.executor_kind = executor
        self.workers = workers
        self.timeout = timeout
        self.policy = RetryPolicy(retries=retries)
        self.gate = RequestGate(rate if work.uses_network else None, max_requests,
                                processes=executor == "process")
        self.cache = cache if work.cacheable and cache is not None else None
        self._memory = MemoryCache()
        self.progress = progress
        self.window = window
        self.counts: Counter[str] = Counter({status: 0 for status in STATUSES})
        self.aborted: RunAborted | None = None
        self.elapsed = 0.0
        self.requests = 0
        self._run: Run[str, R] | None = None
        self._pending_interrupt: BaseException | None = None

    def interrupt(self, exc: BaseException) -> None:
        """Ask the run to stop and raise ``exc`` after a short drain (signal-safe)."""
        self._pending_interrupt = exc
        if self._run is not None:
            self._run.interrupt(exc)

    def _lookup(self, key: str) -> CacheEntry | None:
        entry = self._memory.get(self.work.namespace, key)
        if entry is None and self.cache is not None:
            entry = self.cache.get(self.work.namespace, key, raw=self.keep_raw)
        return entry

    def _plan(self, query: str) -> Plan:
        invalid = self.work.invalid(query)
        if invalid is not None:
            return Plan(result=invalid)
        key = self.work.key(query)
        entry = self._lookup(key)
        if entry is not None:
            return Plan(result=self.work.from_cache(query, entry))
        return Plan(key=key, payload=query)

    def _store(self, key: Hashable | None, result: R) -> None:
        entry = self.work.to_cache(result)
        if entry is None or not isinstance(key, str):
            return
        self._memory.put(self.work.namespace, key, entry)
        if self.cache is not None:
            self.cache.put(self.work.namespace, key, entry)

    def _fail(self, query: str, error: str) -> R:
        return self.work.failed(query, redact(error, self.work.secrets))

    def _stopped(self, query: str) -> R:
        reason = self.aborted or self.gate.aborted() or RunAborted("run stopped")
        return self.work.failed(query, describe(reason))

    def __iter__(self) -> Iterator[R]:
        started = time.perf_counter()
        gate = self.gate if self.work.uses_network else None
        results: Iterator[R] = iter(())
        try:
            executor = make_executor(
                self.executor_kind,
                self.work.worker_factory(gate, self.policy, self.timeout),
                self.workers,
            )
            run: Run[str, R] = Run(
                self.queries,
                executor,
                plan=self._plan,
                finish=lambda query, value: self.work.for_query(value, query),
                fail=self._fail,
                stopped=self._stopped,
                on_value=self._store,
                window=self.window,
            )
            self._run = run
            if self._pending_interrupt is not None:
                run.interrupt(self._pending_interrupt)
            results = iter(run)
            for result in results:
                status = getattr(result, "status", "failed")
                self.counts[status] += 1
                if gate is not None and self.aborted is None:
                    self.aborted = gate.aborted()
                    if self.aborted is not None:
                        run.stop()
                if self.progress is not None:
                    self.progress(result)
                yield result
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # shuts the workers down before the gate goes
            self.elapsed = time.perf_counter() - started
            if gate is not None:
                self.requests = gate.requests_sent
            self.gate.close()
            close_work = getattr(self.work, "close", None)
            if close_work is not None:
                close_work()
            if self.cache is not None:
                self.cache.flush()

    @property
    def total(self) -> int:
        """Rows finished so far."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """``N rows: A ok, B not_found, C invalid, D failed in S s (R rows/s)``."""
        rate = self.total / self.elapsed if self.elapsed > 0 else 0.0
        c = self.counts
        return (
            f"{self.total} rows: {c['ok']} ok, {c['not_found']} not_found, "
            f"{c['invalid']} invalid, {c['failed']} failed in {self.elapsed:.2f} s "
            f"({rate:.1f} rows/s)"
        )


@contextlib.contextmanager
def progress_option(options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Turn ``progress=True`` into a progress bar on stderr for the run's length."""
    if options.get("progress") is not True:
        yield options
        return
    from tqdm import tqdm

    bar = tqdm(unit="row", dynamic_ncols=True, leave=False)
    try:
        yield {**options, "progress": lambda result: bar.update(1)}
    finally:
        bar.close()
