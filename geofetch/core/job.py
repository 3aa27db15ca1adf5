"""A job: one run of geocoding or fetching, from queries to ordered results, and the
owner of every resource the run uses.

It wires the pieces together, the same for every kind of work::

    queries ─► invalid? ─► cache / recent answers / in flight? ─► engine ─► results
                                   ▲                               │ executor: workers
                                   └── fresh ok / not_found ◄──────┘ gate: rate, budget, abort

What differs between geocoding and fetching (how a query is checked, what a worker
does, how a result is cached) is a :class:`Work` object; nothing else differs.

A job is a context manager. The request gate, the cache, the work's own resources
(the fetch task's lock directory) and the executor with its workers exist only
between ``__enter__`` and ``__exit__``, and are released on every exit path: the end
of the input, an error, Ctrl-C, an abandoned iteration. Iterating a job that was
not entered enters it for the length of the iteration. Nothing is created before
that, so a run that fails early (a bad output path, a missing column) leaves
nothing behind.

Memory stays bounded whatever the number of distinct queries: in-run deduplication
keeps the keys of work in flight only, plus the last :data:`RECENT_ANSWERS` answers
(without the provider's raw answer when ``keep_raw`` is off), and the engine's
window bounds what is read ahead.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from ..cache import Cache, CacheEntry, open_cache
from ..exceptions import RunAborted, UsageError, describe
from ..models import STATUSES
from ..options import RunOptions
from ..redact import redact
from .engine import Plan, Run
from .executors import Executor, WorkerSpec, make_executor
from .gate import Gate, open_gate
from .retry import RetryPolicy

R = TypeVar("R")

#: Answers kept after their rows are written, so a repeat soon after is not asked again.
RECENT_ANSWERS = 1024
#: Seconds a row may take beyond its requests' own bounds before its worker is hung.
TASK_MARGIN_SECONDS = 5.0


class Work(Protocol[R]):
    """What a kind of work (geocode, fetch) supplies to a :class:`Job`."""

    namespace: str
    uses_network: bool
    cacheable: bool
    secrets: tuple[str, ...]
    default_rate: float | None
    #: The most requests per second the service allows (None: no limit known).
    max_rate: float | None

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

    def worker_spec(self, gate: Gate | None, policy: RetryPolicy,
                    timeout: float) -> WorkerSpec:
        """A picklable callable that builds one worker (called once per worker)."""

    def open(self) -> None:
        """Make the run's own resources (called on the job's enter)."""

    def close(self) -> None:
        """Release them (called on the job's exit, whatever happened)."""


class Job(Generic[R]):
    """One run: enter it, iterate it for results in input order, one per query.

    ``keep_raw=False`` skips decoding cached provider answers (the CLI writes none).
    After (or during) iteration: ``counts`` per status, ``aborted`` (the error that
    stopped the run, if any), ``elapsed`` seconds, ``requests`` sent.
    """

    def __init__(
        self,
        queries: Iterable[str],
        work: Work[R],
        options: RunOptions | None = None,
        *,
        window: int | None = None,
        keep_raw: bool = True,
    ) -> None:
        self.work = work
        self.options = options or RunOptions()
        self.queries = queries
        self.keep_raw = keep_raw
        self.window = window
        rate = self.options.rate
        #: Requests per second for the whole run (None: no limit).
        self.rate = (work.default_rate if rate is None else rate) or None
        max_rate = work.max_rate
        if max_rate is not None and (self.rate is None or self.rate > max_rate):
            asked = "no limit" if self.rate is None else f"{self.rate:g} requests/s"
            raise UsageError(f"rate: {asked} is more than this service allows "
                             f"({max_rate:g} per second, by its usage policy)")
        self.policy = RetryPolicy(retries=self.options.retries, max_wait=self.options.max_wait)
        self.counts: Counter[str] = Counter({status: 0 for status in STATUSES})
        self.aborted: RunAborted | None = None
        self.elapsed = 0.0
        self.requests = 0
        #: Rate-limit answers seen, and the rate in force at the end (None: no limit).
        self.throttled = 0
        self.final_rate: float | None = None
        self.gate: Gate | None = None
        self.cache: Cache | None = None
        self.executor: Executor | None = None
        self._recent: OrderedDict[str, CacheEntry] = OrderedDict()
        self._stack: contextlib.ExitStack | None = None
        self._run: Run[str, R] | None = None
        self._pending_interrupt: BaseException | None = None
        self._progress: Callable[[R], None] | None = None

    # -- lifetime -------------------------------------------------------------------

    def __enter__(self) -> Job[R]:
        if self._stack is not None:
            raise UsageError("this job is already running; a job runs once")
        stack = contextlib.ExitStack()
        try:
            if self.work.uses_network:
                self.gate = open_gate(self.rate, self.options)
                stack.callback(self._close_gate)
            if self.work.cacheable:
                self.cache = open_cache(self.options.cache)
                if self.cache is not None:
                    owned = self.cache is not self.options.cache
                    stack.callback(self.cache.close if owned else self.cache.flush)
            self.work.open()
            stack.callback(self.work.close)
            stack.enter_context(self._progress_bar())
            executor = make_executor(self.options.executor, self.options.workers,
                                     threads=self.options.threads, options=self.options)
            self.executor = executor
            executor.start(self.work.worker_spec(self.gate, self.policy, self.options.timeout),
                           task_seconds=self.task_seconds(executor.capacity))
            stack.callback(lambda: executor.stop(wait=self._run is not None
                                                 and self._run.finished))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def task_seconds(self, in_flight: int) -> float:
        """The longest one row may take before its worker counts as hung (seconds).

        Each of the work's ``requests_per_task`` requests may take ``timeout`` per
        attempt, the backoff between attempts, and a ``Retry-After`` wait of at most
        ``max_wait``; the gate may make it wait behind ``in_flight`` others at
        the run's rate; plus :data:`TASK_MARGIN_SECONDS`.
        """
        options, policy = self.options, self.policy
        backoff = sum(min(policy.backoff_max, policy.backoff_base * 2.0 ** n)
                      + policy.max_wait for n in range(options.retries))
        per_request = options.timeout * (options.retries + 1) + backoff
        gate_wait = in_flight / self.rate if self.rate else 0.0
        hops: int = getattr(self.work, "requests_per_task", 1)
        return hops * per_request + gate_wait + TASK_MARGIN_SECONDS

    def _close_gate(self) -> None:
        if self.gate is not None:
            self._read_gate()
            self.gate.close()

    def _read_gate(self) -> None:
        assert self.gate is not None
        self.requests = self.gate.requests_sent
        self.throttled = self.gate.throttle_count
        self.final_rate = self.gate.current_rate

    @contextlib.contextmanager
    def _progress_bar(self) -> Iterator[None]:
        progress = self.options.progress
        if progress is False:
            yield
            return
        if progress is not True:
            self._progress = progress
            yield
            return
        from tqdm import tqdm

        bar = tqdm(unit="row", dynamic_ncols=True, leave=False)

        def advance(result: R) -> None:
            bar.update(1)

        self._progress = advance
        try:
            yield
        finally:
            bar.close()

    def interrupt(self, exc: BaseException) -> None:
        """Ask the run to stop and raise ``exc`` after a short drain (signal-safe)."""
        self._pending_interrupt = exc
        if self._run is not None:
            self._run.interrupt(exc)

    # -- planning -------------------------------------------------------------------

    def _lookup(self, key: str) -> CacheEntry | None:
        entry = self._recent.get(key)
        if entry is not None:
            self._recent.move_to_end(key)
            return entry
        if self.cache is not None:
            return self.cache.get(self.work.namespace, key, raw=self.keep_raw)
        return None

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
        if self.cache is not None:
            self.cache.put(self.work.namespace, key, entry)
        if not self.keep_raw and entry.raw is not None:
            entry = CacheEntry(entry.status, entry.lat, entry.lng, entry.formatted_address,
                               fields=entry.fields)
        self._recent[key] = entry
        if len(self._recent) > RECENT_ANSWERS:
            self._recent.popitem(last=False)

    def _fail(self, query: str, error: str) -> R:
        return self.work.failed(query, redact(error, self.work.secrets))

    def _stopped(self, query: str) -> R:
        reason = self.aborted or self._abort_reason() or RunAborted("run stopped")
        return self.work.failed(query, describe(reason))

    # -- running --------------------------------------------------------------------

    def __iter__(self) -> Iterator[R]:
        if self._stack is not None:
            yield from self._results()
            return
        with self:
            yield from self._results()

    def _results(self) -> Iterator[R]:
        assert self.executor is not None
        started = time.perf_counter()
        run: Run[str, R] = Run(
            self.queries,
            self.executor,
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
        try:
            for result in run:
                self.counts[getattr(result, "status", "failed")] += 1
                if self.aborted is None:
                    self.aborted = self._abort_reason()
                    if self.aborted is not None:
                        run.stop()
                if self._progress is not None:
                    self._progress(result)
                yield result
        finally:
            self.elapsed = time.perf_counter() - started
            if self.gate is not None:
                self._read_gate()

    def _abort_reason(self) -> RunAborted | None:
        """Why the run must stop: its executor lost its cluster, or its gate aborted."""
        lost = self.executor.aborted() if self.executor is not None else None
        return lost or (self.gate.aborted() if self.gate is not None else None)

    @property
    def total(self) -> int:
        """Rows finished so far."""
        return sum(self.counts.values())

    def summary(self) -> str:
        """``N rows: A ok, B not_found, C invalid, D failed in S s (R rows/s)``, and
        ``; T rate-limit answers, final rate F/s`` when the provider throttled."""
        rate = self.total / self.elapsed if self.elapsed > 0 else 0.0
        c = self.counts
        line = (
            f"{self.total} rows: {c['ok']} ok, {c['not_found']} not_found, "
            f"{c['invalid']} invalid, {c['failed']} failed in {self.elapsed:.2f} s "
            f"({rate:.1f} rows/s)"
        )
        if self.throttled:
            final = f"{self.final_rate:.3g}/s" if self.final_rate else "no limit"
            line += f"; {self.throttled} rate-limit answers, final rate {final}"
        return line
