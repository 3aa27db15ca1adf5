"""Thread, process and serial executors behind one small interface.

::

    engine (parent)                                   each worker
    submit(task_id, payload) ──► thread pool queue ─┐
                              └► pipe of one worker ─┴► fn = make_worker()   (once)
    completed(timeout) ◄──── (task_id, outcome) ◄──────  outcome = capture(fn, payload)

An outcome is ``("value", v)``, ``("error", "Class: message")`` (the task raised,
whatever it raised, ``SystemExit`` included) or ``("lost", "WorkerDied: ...")``
(the worker process died under the task). Nothing a task does escapes.

The process executor keeps its own small pool of ``multiprocessing`` processes, one
duplex pipe each, rather than ``multiprocessing.Pool``: Pool loses the task of a
worker that dies and waits for it forever (bpo-22393), and a worker killed while
idle can leave Pool's shared queue lock held. Here each worker owns its pipe, the
parent knows which tasks it holds, and ``connection.wait`` on the process
sentinels sees a death at once: the running task is reported ``lost`` (the engine
retries it once), the tasks queued behind it go back in line, and a new worker
takes its place. Workers are started with ``forkserver`` (``spawn`` where that is
missing): forking a parent that already runs threads is unsafe.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait as wait_for_ready
from typing import Any

from ..exceptions import UsageError, WorkerStartError, describe

Outcome = tuple[str, Any]
Completed = list[tuple[int, Outcome]]
WorkerFactory = Callable[[], Callable[[Any], Any]]

EXECUTORS = ("thread", "process", "serial")
_MAX_FAILED_STARTS = 3
_FLUSH_SECONDS = 0.05
# A worker thread's loop with nothing to do for this long ends.
_IDLE_SECONDS = 1.0
_PRELOAD = ("__main__", "geofetch.tasks.geocode", "geofetch.tasks.fetch",
            "geofetch.providers.google",
            "geofetch.providers.nominatim", "geofetch.providers.offline")


def capture(fn: Callable[[Any], Any] | None, payload: Any, init_error: str = "") -> Outcome:
    """Run one task and turn whatever happens into an outcome."""
    if fn is None:
        return ("error", init_error)
    try:
        return ("value", fn(payload))
    except BaseException as exc:  # noqa: BLE001 - a task's SystemExit is still its own row
        return ("error", describe(exc))


def default_workers(kind: str) -> int:
    """Thread: 8; process: the CPU count; serial: 1."""
    if kind == "thread":
        return 8
    if kind == "process":
        return os.cpu_count() or 1
    return 1


class Executor(ABC):
    """Runs tasks somewhere and reports each outcome exactly once."""

    kind: str
    workers: int

    @abstractmethod
    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        """Queue one task; ``alone``: run it in a batch of its own (a suspect)."""

    @abstractmethod
    def completed(self, timeout: float | None) -> Completed:
        """Outcomes finished since the last call; waits up to ``timeout`` s for one."""

    @abstractmethod
    def shutdown(self, *, wait: bool = True) -> None:
        """Stop every worker; with ``wait=False``, don't wait for running tasks."""

    @property
    def capacity(self) -> int:
        """How many queued tasks keep every worker busy."""
        return self.workers * 2


class SerialExecutor(Executor):
    """Runs each task in the calling thread when it is submitted."""

    kind = "serial"

    def __init__(self, make_worker: WorkerFactory, workers: int = 1) -> None:
        self.workers = 1
        self._make_worker = make_worker
        self._fn: Callable[[Any], Any] | None = None
        self._done: Completed = []

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        if self._fn is None:
            outcome = capture(lambda _: self._make_worker(), None)
            if outcome[0] == "error":
                self._done.append((task_id, outcome))
                return
            self._fn = outcome[1]
        self._done.append((task_id, capture(self._fn, payload)))

    def completed(self, timeout: float | None) -> Completed:
        done, self._done = self._done, []
        return done

    def shutdown(self, *, wait: bool = True) -> None:
        self._fn = None


class ThreadExecutor(Executor):
    """A ``ThreadPoolExecutor`` whose threads each run one loop over a task queue.

    Each loop builds its worker function once. One pool task per thread, not per
    row: a ``Future`` per row costs a condition and two contended locks, more than
    the engine's own bookkeeping for the row. A loop left idle for
    :data:`_IDLE_SECONDS` ends (the next task starts another), so a run abandoned
    without being closed cannot keep the interpreter from exiting.
    """

    kind = "thread"

    def __init__(self, make_worker: WorkerFactory, workers: int) -> None:
        self.workers = workers
        self._make_worker = make_worker
        self._tasks: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="geofetch-worker")
        self._loops = 0  # loops running or about to
        self._loops_lock = threading.Lock()
        self._stopping = False

    def _loop(self) -> None:
        fn, init_error = None, ""
        try:
            fn = self._make_worker()
        except BaseException as exc:  # noqa: BLE001 - reported with every task it gets
            init_error = describe(exc)
        while not self._stopping:
            try:
                task = self._tasks.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._loops_lock:
                    if self._tasks.empty():  # else a task came in as the wait ended
                        self._loops -= 1
                        return
                continue
            if task is None:
                return
            task_id, payload = task
            self._done.put((task_id, capture(fn, payload, init_error)))

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        self._tasks.put((task_id, payload))
        with self._loops_lock:
            if self._loops < self.workers:  # a loop per task until the pool is full
                self._loops += 1
                self._pool.submit(self._loop)

    def completed(self, timeout: float | None) -> Completed:
        try:
            done = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def shutdown(self, *, wait: bool = True) -> None:
        if not wait:
            self._stopping = True  # running tasks finish, queued ones are dropped
        with self._loops_lock:
            for _ in range(self._loops):
                self._tasks.put(None)
        self._pool.shutdown(wait=wait)


def _process_main(conn: Any, make_worker: WorkerFactory) -> None:
    """A worker process: build the worker function once, then serve batches of tasks.

    Results go back one message per batch (or every ``_FLUSH_SECONDS`` within a slow
    batch): one message per task would make the parent's pipe reads the bottleneck.
    """
    # Ctrl-C reaches the whole process group; the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fn, init_error = None, ""
    try:
        fn = make_worker()
    except BaseException as exc:  # noqa: BLE001
        init_error = describe(exc)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        results: Completed = []
        flushed_at = time.monotonic()
        for task_id, payload in batch:
            results.append((task_id, capture(fn, payload, init_error)))
            if time.monotonic() - flushed_at >= _FLUSH_SECONDS:
                if not _send_results(conn, results):
                    return
                results, flushed_at = [], time.monotonic()
        if results and not _send_results(conn, results):
            return


def _send_results(conn: Any, results: Completed) -> bool:
    """Send results; one that will not pickle becomes its own row's error."""
    try:
        conn.send(results)
        return True
    except (EOFError, OSError):
        return False
    except Exception:  # noqa: BLE001 - some value would not pickle; nothing was sent
        safe: Completed = []
        for task_id, outcome in results:
            try:
                pickle.dumps(outcome)
                safe.append((task_id, outcome))
            except Exception as exc:  # noqa: BLE001
                safe.append((task_id, ("error", f"UnpicklableResult: {describe(exc)}")))
    try:
        conn.send(safe)
        return True
    except (EOFError, OSError):
        return False


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.outstanding: deque[tuple[int, Any]] = deque()
        self.dead = False
        self.answered = False
        self.suspect = False


class ProcessExecutor(Executor):
    """Worker processes fed through one pipe each, healed when one dies."""

    kind = "process"

    def __init__(
        self,
        make_worker: WorkerFactory,
        workers: int,
        *,
        start_method: str | None = None,
        prefetch: int = 2,
        batch: int = 16,
    ) -> None:
        self.workers = workers
        self._make_worker = make_worker
        self._ctx: Any = multiprocessing.get_context(start_method or default_start_method())
        if self._ctx.get_start_method() == "forkserver":
            # Workers fork from a server that has already imported these: a worker
            # then starts in milliseconds instead of re-importing requests & co.
            self._ctx.set_forkserver_preload(list(_PRELOAD))
        self._prefetch = prefetch
        self._batch = batch
        self._pending: deque[tuple[int, Any]] = deque()
        self._suspects: deque[tuple[int, Any]] = deque()
        self._pool: list[_Worker] = []
        self._closed = False
        self._failed_starts = 0
        for _ in range(workers):
            self._pool.append(self._spawn())

    @property
    def capacity(self) -> int:
        return self.workers * self._prefetch * self._batch

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_process_main,
            args=(child_conn, self._make_worker),
            name="geofetch-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(process, parent_conn)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._pool if not w.dead]

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        (self._suspects if alone else self._pending).append((task_id, payload))

    def _dispatch(self) -> None:
        live = [w for w in self._pool if not w.dead]
        for worker in live:  # a suspect runs alone on an idle worker: a death then names it
            if self._suspects and not worker.outstanding:
                self._send(worker, [self._suspects.popleft()], suspect=True)
        if not self._pending or not live:
            return
        # Small batches when work is scarce (slow network tasks spread over every
        # worker), larger ones when it is plentiful (cheap tasks, fewer messages).
        share = max(1, min(self._batch, -(-len(self._pending) // len(live))))
        for worker in live:
            if worker.suspect:
                continue
            while self._pending and len(worker.outstanding) < self._prefetch * share:
                batch = [self._pending.popleft() for _ in range(min(share, len(self._pending)))]
                if not self._send(worker, batch):
                    break

    def _send(self, worker: _Worker, batch: list[tuple[int, Any]], suspect: bool = False) -> bool:
        worker.outstanding.extend(batch)
        worker.suspect = suspect
        try:
            worker.conn.send(batch)
            return True
        except (OSError, EOFError):
            return False  # it died: its sentinel reports it, its tasks come back

    def completed(self, timeout: float | None) -> Completed:
        self._dispatch()
        live = [w for w in self._pool if not w.dead]
        handles = [w.conn for w in live] + [w.process.sentinel for w in live]
        ready = set(wait_for_ready(handles, timeout))
        done: Completed = []
        for worker in live:
            if worker.conn in ready:
                self._receive(worker, done)
            if worker.process.sentinel in ready or worker.dead:
                self._bury(worker, done)
        self._dispatch()
        return done

    def _receive(self, worker: _Worker, done: Completed) -> None:
        try:
            while worker.conn.poll():
                for task_id, outcome in worker.conn.recv():
                    self._forget(worker, task_id)
                    done.append((task_id, outcome))
                worker.answered = True
                if not worker.outstanding:
                    worker.suspect = False
        except (EOFError, OSError):
            worker.dead = True

    @staticmethod
    def _forget(worker: _Worker, task_id: int) -> None:
        for i, (tid, _) in enumerate(worker.outstanding):
            if tid == task_id:
                del worker.outstanding[i]
                return

    def _bury(self, worker: _Worker, done: Completed) -> None:
        """A worker died: report every task it held lost, and replace it.

        Which of a batch's tasks killed it is unknown, so each is reported lost; the
        engine runs a lost task again alone (``alone=True``), where a second death
        names the culprit and the others simply finish.
        """
        self._receive(worker, done)  # answers it sent before dying still count
        worker.dead = True
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        cause = f"signal {-code}" if code is not None and code < 0 else f"code {code}"
        for task_id, _ in worker.outstanding:
            done.append((task_id, ("lost", f"WorkerDied: worker process exited with {cause}")))
        worker.outstanding.clear()
        worker.conn.close()
        self._pool.remove(worker)
        self._failed_starts = 0 if worker.answered else self._failed_starts + 1
        if self._failed_starts >= _MAX_FAILED_STARTS:
            self.shutdown(wait=False)
            raise WorkerStartError(
                f"{_MAX_FAILED_STARTS} worker processes in a row died before finishing a task "
                f"(the last exited with {cause}); a script that "
                "uses executor='process' must guard its entry point with "
                "`if __name__ == '__main__':`"
            )
        if not self._closed:
            self._pool.append(self._spawn())

    def shutdown(self, *, wait: bool = True) -> None:
        self._closed = True
        self._pending.clear()
        self._suspects.clear()
        for worker in self._pool:
            try:
                worker.conn.send(None)
            except (OSError, EOFError, ValueError):
                pass
        for worker in self._pool:
            worker.process.join(timeout=5 if wait else 0.5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._pool.clear()


def default_start_method() -> str:
    """``forkserver`` where the platform has it, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def make_executor(kind: str, make_worker: WorkerFactory, workers: int | None = None) -> Executor:
    """Build the executor called ``kind`` with ``workers`` workers (its default if None)."""
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if workers is None:
        workers = default_workers(kind)
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    if kind == "serial":
        return SerialExecutor(make_worker)
    if kind == "thread":
        return ThreadExecutor(make_worker, workers)
    return ProcessExecutor(make_worker, workers)
