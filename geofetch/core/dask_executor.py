"""The dask.distributed executor: rows in chunks on a dask cluster, local or remote.

::

    engine (coordinator)                 dask scheduler            each dask worker
    start(spec) ── register_plugin ──────────────────────────────► plugin.setup
    submit(task_id, payload)  rows wait in line
    completed(timeout): chunks ─► client.submit(run_chunk) ──────► worker = spec() per
                        ◄── outcomes per row ◄───────────────────  thread (once), capture
    stop() ── unregister_plugin ─────────────────────────────────► plugin.teardown: close

* **Cluster.** ``scheduler="tcp://HOST:PORT"`` joins that cluster, ``client=`` uses an
  existing :class:`distributed.Client`; neither: a :class:`distributed.LocalCluster` on
  127.0.0.1 without a dashboard, of ``workers`` processes x ``threads`` threads, made at
  :meth:`DaskExecutor.start` and closed at :meth:`DaskExecutor.stop`.
* **Chunks.** One dask task costs about 2.6 ms of scheduling on 2 cores: at 2 x 8
  threads and 50 ms a row, one row per task reached 81% of the ideal rate and 25
  rows per task 94% (measured for issue 14), so rows go :data:`DEFAULT_CHUNK` to a
  task. When rows are scarce a chunk is smaller, so that every thread gets some. The
  engine's window bounds what is in flight (``Client.get_executor().map`` would
  submit everything at once), and the engine puts results back in input order.
* **Workers.** A worker plugin carries the worker spec to every dask worker, those
  that join later included; each thread of a dask worker builds its own worker once
  (a task function is not promised to be thread-safe, as with the thread executor)
  and the plugin closes them all in ``teardown``: when the run unregisters it, or
  the dask worker closes.
* **A dask worker that dies** (killed, out of memory) under a chunk: the scheduler's
  ``allowed-failures`` is 0 for the local cluster, so the chunk's future raises
  ``KilledWorker`` at once rather than being run on three more workers; every row
  of it is reported lost, and the engine runs each again alone, so a row that kills
  workers ends ``failed`` with ``WorkerDied`` and the others finish. (A remote
  scheduler keeps its own setting: start it with
  ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0``.)
* **A lost scheduler**: when the client has not been connected for
  :data:`SCHEDULER_GRACE` seconds with rows out, every row out is ``failed`` with
  :class:`~geofetch.exceptions.SchedulerUnavailable` and :meth:`aborted` says so;
  the job then stops (exit status 3).

* **An interrupt** (the engine's :meth:`~DaskExecutor.cancel_queued`): rows not yet
  sent are dropped, and every dask worker is told (``Client.run``; the plugin's
  ``stopping`` flag, read before each row) that this run's chunks start no more
  rows: each chunk out comes back at once with the rows it finished, which the
  engine caches and writes, and the rest ``cancelled``. A chunk that does not come
  back once the run is interrupted is ``cancelled`` too, never ``failed``. The
  worker processes of a local cluster ignore SIGINT and SIGTERM (as the process
  executor's do), so a signal to the whole process group reaches the coordinator
  alone, which stops the run this way and then closes the cluster.
* **A killed coordinator** (SIGKILL: nothing can flush): the rows of chunks that
  had come back are in the cache; answers inside chunks still out are lost with
  it and asked again by the next run: at most ``threads x chunk`` rows.

* **A hung row** (a call that ignores every timeout): a chunk gets ``task_seconds``
  per row, its own and those already out before it per thread; past that its rows
  are ``failed`` with ``WorkerTimeout`` and the dask worker running it is restarted
  (through its nanny), as the process executor kills and replaces a hung process.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import signal
import threading
import time
import uuid
import warnings
from collections import deque
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

import dask
import distributed

from ..exceptions import RunAborted, SchedulerUnavailable, UsageError, describe
from .executors import Completed, Executor, Outcome, Worker, WorkerSpec, build, capture, close

if TYPE_CHECKING:
    from ..options import RunOptions

log = logging.getLogger("geofetch.executors")

#: Rows per dask task (see the module docstring for the measurement).
DEFAULT_CHUNK = 25
#: Seconds the client may stay disconnected from its scheduler, rows out, before
#: those rows fail and the run stops.
SCHEDULER_GRACE = 10.0
#: Seconds to wait for a remote scheduler when joining it.
CONNECT_TIMEOUT = 10.0


class GeofetchWorkerPlugin(distributed.WorkerPlugin):
    """Builds one geofetch worker per thread of a dask worker, and closes them all on
    teardown (see the module docstring)."""

    def __init__(self, spec: WorkerSpec, *, ignore_signals: bool = False) -> None:
        self.spec = spec
        self.ignore_signals = ignore_signals
        #: Set on every dask worker when the run is interrupted: chunks start no more rows.
        self.stopping = False
        self._local = threading.local()
        self._built: list[Worker | None] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "ignore_signals": self.ignore_signals}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"], ignore_signals=state["ignore_signals"])  # type: ignore[misc]

    def setup(self, worker: distributed.Worker) -> None:
        """On a local cluster's worker process: ignore SIGINT and SIGTERM, as the process
        executor's workers do. A signal to the whole process group (Ctrl-C, ``timeout``,
        systemd) then reaches the coordinator, which stops the run cooperatively
        (:meth:`DaskExecutor.cancel_queued`) and closes these processes itself; they
        still go with a coordinator that is killed (their nanny's pipe closes). A
        remote cluster's workers keep their own handling (an operator stops them)."""
        if self.ignore_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def worker(self) -> tuple[Worker | None, str]:
        """This thread's worker (built on its first call), or the error building it."""
        built: tuple[Worker | None, str] | None = getattr(self._local, "built", None)
        if built is None:
            built = build(self.spec)
            self._local.built = built
            with self._lock:
                self._built.append(built[0])
        return built

    def teardown(self, worker: distributed.Worker) -> None:
        """Close every worker built on this dask worker."""
        with self._lock:
            built, self._built = self._built, []
        for one in built:
            close(one)


#: The outcome of a row a chunk did not start because the run was interrupted.
CANCELLED: Outcome = ("cancelled", "the run was interrupted before this row started")


def run_chunk(plugin_name: str, payloads: list[Any]) -> list[Outcome]:
    """A dask task: run each payload on this thread's worker; one outcome per payload.
    Once the run is interrupted (the plugin's ``stopping``, checked before each row)
    the rows not started are ``cancelled``, so the chunk returns at once with the rows
    it finished."""
    plugin = distributed.get_worker().plugins[plugin_name]
    assert isinstance(plugin, GeofetchWorkerPlugin)
    worker, init_error = plugin.worker()
    outcomes: list[Outcome] = []
    for payload in payloads:
        if plugin.stopping:
            outcomes.append(CANCELLED)
        else:
            outcomes.append(capture(worker, payload, init_error))
    return outcomes


def stop_starting_rows(plugin_name: str, dask_worker: distributed.Worker) -> None:
    """Run on every dask worker (``Client.run``) on an interrupt: its chunks of this
    run start no more rows."""
    plugin = dask_worker.plugins.get(plugin_name)
    if isinstance(plugin, GeofetchWorkerPlugin):
        plugin.stopping = True


class DaskExecutor(Executor):
    """Rows in chunks on a dask.distributed cluster (see the module docstring).

    ``workers`` processes x ``threads`` threads for a local cluster; ``scheduler``
    (``tcp://HOST:PORT``) or ``client`` to use an existing one; ``chunk``: rows per
    task (default :data:`DEFAULT_CHUNK`). Raises :class:`UsageError` at
    :meth:`start` when the scheduler cannot be reached.
    """

    kind = "dask"

    def __init__(self, workers: int, threads: int = 1, *, scheduler: str | None = None,
                 client: Any = None, chunk: int | None = None) -> None:
        self.workers = workers
        self.threads = threads
        self.scheduler = scheduler
        self.chunk = chunk or DEFAULT_CHUNK
        self.client: Any = client
        self._owns_client = client is None
        self._cluster: Any = None
        self._name = f"geofetch-{uuid.uuid4().hex}"
        self._slots = workers * threads
        self._pending: deque[tuple[int, Any]] = deque()
        self._suspects: deque[tuple[int, Any]] = deque()
        self._futures: dict[int, tuple[Any, list[int]]] = {}
        self._done: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._numbers = itertools.count()
        self._lost: SchedulerUnavailable | None = None
        self._disconnected_at: float | None = None
        self._started = False
        self._suspect: int | None = None  # the one suspect chunk out
        self._task_seconds: float | None = None
        self._deadlines: dict[int, float] = {}  # chunk number -> when it is overdue
        self._interrupted = False  # cancel_queued was called: the run is being stopped

    @classmethod
    def from_options(cls, workers: int | None, threads: int = 1,
                     options: RunOptions | None = None) -> DaskExecutor:
        """An executor from a run's options (workers default: one process per CPU)."""
        import os

        return cls(workers or os.cpu_count() or 1, threads,
                   scheduler=options.scheduler if options else None,
                   client=options.client if options else None,
                   chunk=options.chunk if options else None)

    @property
    def capacity(self) -> int:
        return 2 * self._slots * self.chunk

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, spec: WorkerSpec, *, task_seconds: float | None = None) -> None:
        """Join or start the cluster and send every dask worker the worker spec; on any
        failure, close what was started and raise."""
        self._task_seconds = task_seconds
        try:
            self._start(spec)
        except BaseException:
            self._started = self.client is not None
            self.stop(wait=False)
            raise

    def _start(self, spec: WorkerSpec) -> None:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            if self.client is None and self.scheduler is not None:
                try:
                    self.client = distributed.Client(  # type: ignore[no-untyped-call]
                        self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise UsageError(f"--scheduler {self.scheduler}: cannot connect "
                                     f"({type(exc).__name__}: {exc})") from None
            elif self.client is None:
                with warnings.catch_warnings():  # "port 8787 in use": we asked for none
                    warnings.simplefilter("ignore", UserWarning)
                    self._cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=self.workers, threads_per_worker=self.threads,
                        processes=True, host="127.0.0.1", dashboard_address=None,
                        silence_logs=logging.CRITICAL)
                self.client = distributed.Client(  # type: ignore[no-untyped-call]
                    self._cluster, set_as_default=False)
        self._started = True
        threads = sum(self.client.nthreads().values())
        self._slots = max(1, threads or self.workers * self.threads)
        self.client.register_plugin(
            GeofetchWorkerPlugin(spec, ignore_signals=self._cluster is not None),
            name=self._name)

    def stop(self, *, wait: bool = True) -> None:
        """Close every worker (the plugin's teardown), then the client and the cluster
        this executor started; a remote cluster keeps running."""
        if not self._started:
            return
        self._started = False
        self._pending.clear()
        self._suspects.clear()
        client = self.client
        futures = [future for future, _ in self._futures.values()]
        self._futures.clear()
        with contextlib.suppress(Exception):
            if futures and not wait:
                client.cancel(futures)
        if self._lost is None:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(self._name)
        if self._owns_client:
            with contextlib.suppress(Exception):
                client.close(timeout=5 if wait else 2)
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self._cluster.close(timeout=10 if wait else 3)
                self._cluster = None
            self.client = None

    def pids(self) -> dict[str, int]:
        """Process id of each dask worker, by address (for tests and diagnostics)."""
        import os

        return dict(self.client.run(os.getpid))

    # -- tasks ------------------------------------------------------------------------

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        if self._lost is not None:
            self._done.put(-1 - task_id)  # failed at the next look (see completed)
            return
        (self._suspects if alone else self._pending).append((task_id, payload))

    def _dispatch(self) -> None:
        # One suspect at a time: two on one dask worker would die together, and the
        # row that did not kill it would fail with the one that did.
        if self._suspects and self._suspect is None:
            self._suspect = self._send([self._suspects.popleft()])
        if not self._pending:
            return
        # Small chunks when rows are scarce (every thread gets some), full ones else.
        share = max(1, min(self.chunk, -(-len(self._pending) // self._slots)))
        while self._pending:
            self._send([self._pending.popleft()
                        for _ in range(min(share, len(self._pending)))])

    def _send(self, chunk: list[tuple[int, Any]]) -> int:
        number = next(self._numbers)
        future = self.client.submit(run_chunk, self._name, [p for _, p in chunk],
                                    key=f"{self._name}-{number}", pure=False)
        if self._task_seconds is not None:
            # rows run one after another in a thread: this chunk's, behind those already
            # out, spread over every thread (a generous bound: each row at its worst)
            ahead = sum(len(ids) for _, ids in self._futures.values()) / self._slots
            self._deadlines[number] = (time.monotonic()
                                       + self._task_seconds * (len(chunk) + ahead))
        self._futures[number] = (future, [task_id for task_id, _ in chunk])
        future.add_done_callback(lambda _, number=number: self._done.put(number))
        return number

    def completed(self, timeout: float | None) -> Completed:
        done: Completed = []
        if self._lost is None:
            self._dispatch()
            self._watch_scheduler(done)
            self._expire(done)
        try:
            number = self._done.get(timeout=0 if done else timeout)
        except queue.Empty:
            return done
        self._settle(number, done)
        while True:
            try:
                self._settle(self._done.get_nowait(), done)
            except queue.Empty:
                return done

    def _settle(self, number: int, done: Completed) -> None:
        if number < 0:  # a row submitted after the scheduler was lost
            assert self._lost is not None
            done.append((-1 - number, ("error", describe(self._lost))))
            return
        entry = self._futures.pop(number, None)
        self._deadlines.pop(number, None)
        if number == self._suspect:
            self._suspect = None
        if entry is None:
            return  # already failed with the scheduler
        future, task_ids = entry
        status = future.status
        if status == "finished":
            try:
                outcomes = future.result()
            except (OSError, CancelledError) as exc:  # the scheduler went meanwhile
                self._scheduler_lost(f"{type(exc).__name__} fetching a result", done,
                                     extra=task_ids)
                return
            except Exception as exc:  # noqa: BLE001 - a result that would not unpickle
                outcomes = [("error", describe(exc))] * len(task_ids)
            done.extend(zip(task_ids, outcomes, strict=True))
            return
        if self._interrupted and status in ("error", "cancelled", "lost"):
            # once the run is interrupted, a chunk that did not come back (its worker
            # took the signal too, or the cluster is closing) is not done: no row of it
            # is failed (the engine gives a cancelled row no result)
            done.extend((task_id, CANCELLED) for task_id in task_ids)
            return
        if status == "error":
            error = future.exception()
            if isinstance(error, distributed.KilledWorker):
                outcome: Outcome = ("lost", "WorkerDied: the dask worker process died "
                                            "while running it")
            else:
                outcome = ("error", describe(error))
            done.extend((task_id, outcome) for task_id in task_ids)
            return
        # cancelled or lost: the scheduler forgot it
        self._scheduler_lost(f"the task was {status}", done, extra=task_ids)

    def _expire(self, done: Completed) -> None:
        """Chunks past their deadline: their rows fail with ``WorkerTimeout``, and the
        dask worker running one is restarted (its thread is stuck in a call that
        ignores every timeout); the other rows it held come back lost and run again."""
        now = time.monotonic()
        late = [number for number, deadline in self._deadlines.items() if deadline < now]
        if not late:
            return
        keys = set()
        for number in late:
            del self._deadlines[number]
            future, task_ids = self._futures.pop(number)
            if number == self._suspect:
                self._suspect = None
            keys.add(future.key)
            error = (f"WorkerTimeout: no result within {self._task_seconds:g} s a row; "
                     "its dask worker was restarted")
            done.extend((task_id, ("error", error)) for task_id in task_ids)
            with contextlib.suppress(Exception):
                self.client.cancel([future])
        with contextlib.suppress(Exception):
            stuck = [worker for worker, running in self.client.processing().items()
                     if keys & set(running)]
            if stuck:
                self.client.restart_workers(stuck, timeout=30, raise_for_error=False)

    def _watch_scheduler(self, done: Completed) -> None:
        if not self._futures:
            self._disconnected_at = None
            return
        if self.client.status == "running":
            self._disconnected_at = None
            return
        now = time.monotonic()
        if self._disconnected_at is None:
            self._disconnected_at = now
        elif now - self._disconnected_at >= SCHEDULER_GRACE:
            self._scheduler_lost(f"client {self.client.status} for {SCHEDULER_GRACE:g} s",
                                 done)

    def _scheduler_lost(self, why: str, done: Completed, extra: list[int] | None = None) -> None:
        where = self.scheduler or getattr(self.client, "scheduler", None)
        address = getattr(where, "address", where)
        if self._lost is None:
            self._lost = SchedulerUnavailable(f"dask scheduler {address} lost: {why}")
        error = ("error", describe(self._lost))
        done.extend((task_id, error) for task_id in extra or ())
        for _, task_ids in self._futures.values():
            done.extend((task_id, error) for task_id in task_ids)
        self._futures.clear()
        self._deadlines.clear()
        self._suspect = None
        for task_id, _ in [*self._pending, *self._suspects]:
            done.append((task_id, error))
        self._pending.clear()
        self._suspects.clear()

    def cancel_queued(self) -> list[int]:
        """The run is interrupted: drop the rows not yet sent, and tell every dask
        worker that this run's chunks start no more rows, so each chunk out comes back
        at once with the rows it finished (written and cached by the engine) and the
        rest ``cancelled``. The message goes from a thread: the engine's drain is not
        held by a slow worker."""
        self._interrupted = True
        dropped = [task_id for task_id, _ in [*self._pending, *self._suspects]]
        self._pending.clear()
        self._suspects.clear()
        if self._futures and self.client is not None and self._lost is None:
            client, name = self.client, self._name

            def tell() -> None:
                with contextlib.suppress(Exception):
                    client.run(stop_starting_rows, name, on_error="ignore")

            threading.Thread(target=tell, name="geofetch-dask-stop", daemon=True).start()
        return dropped

    def aborted(self) -> RunAborted | None:
        return self._lost
