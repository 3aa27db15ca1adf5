"""Thread, process and serial executors with a lifecycle: ``start(spec)``, then
``submit``/``completed``, then ``stop()``.

::

    engine (parent)                                    each worker (thread or process)
    start(spec) ───────────────────────────────────►  worker = spec()      (once)
    submit(task_id, payload) ─► task queue / pipe ─►  outcome = capture(worker, payload)
    completed(timeout) ◄──── (task_id, outcome) ◄────
    stop() ────────────────────────────────────────►  worker.close()       (once)

A *worker spec* is a picklable callable that builds one worker: a callable that
does one task, with an optional ``close()``. Each worker thread or process calls
the spec once, keeps the worker for the whole run, and closes it when the executor
stops: at the end, on an error, on Ctrl-C, and when its thread finally returns from
a request that outlived :meth:`Executor.stop`.

An outcome is ``("value", v)``, ``("error", "Class: message")`` (the task raised an
``Exception`` or ``SystemExit``), ``("lost", "WorkerDied: ...")`` (the worker process
died under the task) or ``("raise", exc)``: a ``KeyboardInterrupt`` (or another
``BaseException`` that is not ``SystemExit``) raised inside a task is never turned
into a row; the engine raises it in the caller's thread.

Threads are daemon threads, not a ``ThreadPoolExecutor``'s: its threads are joined
when the interpreter exits, so a run closed with slow requests in flight would hold
the interpreter until they end. :meth:`Executor.stop` waits at most a second for
busy workers; a thread still in a request then ends (and closes its worker) when
the request returns, and never delays the interpreter's exit.

The process executor keeps its own small pool of ``multiprocessing`` processes, one
duplex pipe each, rather than ``multiprocessing.Pool``: Pool loses the task of a
worker that dies and waits for it forever (bpo-22393), and a worker killed while
idle can leave Pool's shared queue lock held. Here each worker owns its pipe, the
parent knows which tasks it holds, and ``connection.wait`` on the process
sentinels sees a death at once: the running task is reported ``lost`` (the engine
retries it once), the tasks queued behind it go back in line, and a new worker
takes its place. With ``threads`` > 1 (``--threads``) each worker process runs that
many worker threads on its batches and answers for them as one: a death loses every
task the process held, each of which is run again alone (see :class:`_ThreadedServer`).
Workers are started from a ``forkserver`` context (``spawn`` where
that is missing; forking a parent that already runs threads is unsafe), taken with
``multiprocessing.get_context``: no global ``multiprocessing`` setting of the host
application (start method, forkserver preload) is changed.

Signals and kills from outside. A worker process ignores SIGINT and SIGTERM: sent to
the whole process group (a terminal's Ctrl-C, a shell's or ``timeout``'s or
systemd's SIGTERM), they are the parent's to act on; it drains the run and then
stops its workers (SIGKILL for one that will not stop). The forkserver ignores only
SIGINT, so such a SIGTERM (or a ``kill -9``) ends it: a forkserver child's sentinel
is a pipe from the forkserver, which then closes with no exit status
(``multiprocessing`` reports code 255) although the worker lives on. A worker whose
sentinel fires while its own pipe is still open is such an orphan: it keeps its
tasks and is watched through its pipe alone. Starting a worker while the
forkserver is dying fails (the socket refuses, or closes before answering: an
``OSError`` or ``EOFError``); it is tried again (``multiprocessing`` starts a new
forkserver once the dead one is reaped), and a start that fails every try counts
as a worker that died at start.
"""

from __future__ import annotations

import logging
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
from multiprocessing.connection import wait as wait_for_ready
from typing import Any, Protocol

from ..exceptions import RunAborted, UsageError, WorkerStartError, describe
from ..options import EXECUTORS, RunOptions

__all__ = [
    "EXECUTORS",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "ThreadExecutor",
    "Worker",
    "WorkerSpec",
    "make_executor",
]

log = logging.getLogger("geofetch.executors")

Outcome = tuple[str, Any]
Completed = list[tuple[int, Outcome]]


class Worker(Protocol):
    """One worker's task function; ``close()`` (optional) releases what it holds."""

    def __call__(self, payload: Any, /) -> Any: ...


#: A picklable callable that builds one worker, called once in each worker.
WorkerSpec = Callable[[], Worker]

_MAX_FAILED_STARTS = 3
_FLUSH_SECONDS = 0.05
#: What a worker process sends once it has built its worker.
_READY = "ready"
#: Parent to worker: drop the tasks not started; worker to parent, with their ids.
_CANCEL = "cancel"
#: How often (seconds) a threaded worker process looks for a task past its time.
_WATCH_SECONDS = 0.25
#: How long :meth:`Executor.stop` waits for busy workers before it returns anyway.
STOP_GRACE_SECONDS = 0.8
#: Signals a worker process ignores: sent to the whole process group, they are the
#: parent's to act on (it drains the run and stops its workers itself).
_PARENTS_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Tries to start one worker process before its start counts as a failed one, and the
#: pause (seconds) between two tries: a forkserver that just died is only restarted
#: by ``multiprocessing`` once it has been reaped.
_START_TRIES = 5
_START_PAUSE = 0.1


def capture(worker: Worker | None, payload: Any, init_error: str = "") -> Outcome:
    """Run one task and turn its value or exception into an outcome.

    ``KeyboardInterrupt`` (any ``BaseException`` but ``SystemExit``) is not caught:
    an interrupt is the caller's, never a row's.
    """
    if worker is None:
        return ("error", init_error)
    try:
        return ("value", worker(payload))
    except (Exception, SystemExit) as exc:  # a task's SystemExit is still its own row
        return ("error", describe(exc))


def build(spec: WorkerSpec) -> tuple[Worker | None, str]:
    """Build one worker: ``(worker, "")``, or ``(None, "Class: message")`` if it failed."""
    try:
        return spec(), ""
    except (Exception, SystemExit) as exc:  # reported with every task it gets
        return None, describe(exc)


def close(worker: Worker | None) -> None:
    """Close ``worker`` if it has a ``close()``; a failure to close is logged, not raised."""
    closer = getattr(worker, "close", None)
    if closer is None:
        return
    try:
        closer()
    except Exception:  # noqa: BLE001 - closing must not hide the run's own outcome
        log.warning("closing a worker failed", exc_info=True)


def default_workers(kind: str) -> int:
    """Thread: 8; process: the CPU count; serial: 1."""
    if kind == "thread":
        return 8
    if kind == "process":
        return os.cpu_count() or 1
    return 1


class Executor(ABC):
    """Runs tasks on workers it starts and stops, reporting each outcome exactly once."""

    kind: str
    workers: int

    @abstractmethod
    def start(self, spec: WorkerSpec, *, task_seconds: float | None = None) -> None:
        """Get ready to run tasks on workers built by ``spec`` (once per worker).

        ``task_seconds``: the longest one task may take (None: no bound). A task past
        it is ``failed`` with ``WorkerTimeout``; its worker is replaced (a thread is
        abandoned, a process killed) and the run goes on.
        """

    @abstractmethod
    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        """Queue one task; ``alone``: run it in a batch of its own (a suspect)."""

    @abstractmethod
    def completed(self, timeout: float | None) -> Completed:
        """Outcomes finished since the last call; waits up to ``timeout`` s for one."""

    def cancel_queued(self) -> list[int]:
        """Drop the tasks not yet started; return their ids (an interrupt's drain then
        waits only for the tasks running)."""
        return []

    def aborted(self) -> RunAborted | None:
        """Why no task can run any more (a cluster's scheduler was lost), else None."""
        return None

    @abstractmethod
    def stop(self, *, wait: bool = True) -> None:
        """Stop every worker and close it. ``wait=False``: drop queued tasks and return
        within :data:`STOP_GRACE_SECONDS` even if tasks are still running."""

    @property
    def capacity(self) -> int:
        """How many queued tasks keep every worker busy."""
        return self.workers * 2

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.stop(wait=exc_type is None)


class SerialExecutor(Executor):
    """Runs each task in the calling thread when it is submitted."""

    kind = "serial"

    def __init__(self, workers: int = 1) -> None:
        self.workers = 1
        self._spec: WorkerSpec | None = None
        self._worker: Worker | None = None
        self._init_error = ""
        self._built = False
        self._done: Completed = []

    def start(self, spec: WorkerSpec, *, task_seconds: float | None = None) -> None:
        self._spec = spec  # a serial task runs in the caller: nothing can abandon it

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        if not self._built:
            assert self._spec is not None, "start() first"
            self._worker, self._init_error = build(self._spec)
            self._built = True
        self._done.append((task_id, capture(self._worker, payload, self._init_error)))

    def completed(self, timeout: float | None) -> Completed:
        done, self._done = self._done, []
        return done

    @property
    def capacity(self) -> int:
        """One: a task runs when it is submitted, so reading ahead only delays results."""
        return 1

    def stop(self, *, wait: bool = True) -> None:
        worker, self._worker = self._worker, None
        close(worker)


class ThreadExecutor(Executor):
    """Daemon threads, each running one loop over a shared task queue.

    A thread is started when a task is submitted and no thread is idle, up to
    ``workers``; it builds its worker once and keeps it until :meth:`stop`. One loop
    per thread, not a ``Future`` per row: a ``Future`` costs a condition and two
    contended locks, more than the engine's own bookkeeping for the row.
    """

    kind = "thread"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._spec: WorkerSpec | None = None
        self._task_seconds: float | None = None
        self._tasks: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a task
        self._stopping = False
        # thread ident -> (task id, started): the task each busy thread runs
        self._running: dict[int, tuple[int, float]] = {}
        self._abandoned: set[int] = set()  # threads whose task timed out

    def start(self, spec: WorkerSpec, *, task_seconds: float | None = None) -> None:
        self._spec = spec
        self._task_seconds = task_seconds

    def _loop(self) -> None:
        assert self._spec is not None
        me = threading.get_ident()
        worker, init_error = build(self._spec)
        try:
            while not self._stopping:
                with self._lock:
                    self._idle += 1
                task = self._tasks.get()
                with self._lock:
                    self._idle -= 1
                if task is None or self._stopping:
                    return
                task_id, payload = task
                if self._task_seconds is not None:
                    self._running[me] = (task_id, time.monotonic())
                try:
                    outcome = capture(worker, payload, init_error)
                except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt: the caller's
                    outcome = ("raise", exc)
                with self._lock:
                    self._running.pop(me, None)
                    if me in self._abandoned:
                        return  # its task was already failed: this answer is too late
                self._done.put((task_id, outcome))
        finally:
            close(worker)

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        assert self._spec is not None, "start() first"
        self._tasks.put((task_id, payload))
        self._grow()

    def _grow(self) -> None:
        """Start a thread if tasks wait, no thread is idle, and the pool is not full."""
        with self._lock:
            working = len(self._threads) - len(self._abandoned)
            if self._idle >= self._tasks.qsize() or working >= self.workers:
                return
            thread = threading.Thread(target=self._loop, daemon=True,
                                      name=f"geofetch-worker-{len(self._threads)}")
            self._threads.append(thread)
        thread.start()

    def completed(self, timeout: float | None) -> Completed:
        done = self._overdue()
        try:
            done.append(self._done.get(timeout=0 if done else timeout))
        except queue.Empty:
            return done
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def cancel_queued(self) -> list[int]:
        dropped: list[int] = []
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return dropped
            if task is None:  # a stop sentinel: it stays
                self._tasks.put(None)
                return dropped
            dropped.append(task[0])

    def _overdue(self) -> Completed:
        """Tasks past ``task_seconds``: failed now; their threads are abandoned."""
        if self._task_seconds is None or not self._running:
            return []
        limit = time.monotonic() - self._task_seconds
        late: Completed = []
        with self._lock:
            for ident, (task_id, started) in list(self._running.items()):
                if started < limit:
                    del self._running[ident]
                    self._abandoned.add(ident)
                    error = (f"WorkerTimeout: no result within {self._task_seconds:g} s; "
                             "the worker thread was abandoned")
                    late.append((task_id, ("error", error)))
        for _ in late:
            self._grow()  # a replacement for each abandoned thread
        return late

    def stop(self, *, wait: bool = True) -> None:
        if not wait:
            self._stopping = True  # running tasks finish, queued ones are dropped
        with self._lock:
            threads = [t for t in self._threads if t.ident not in self._abandoned]
        for _ in threads:
            self._tasks.put(None)
        deadline = time.monotonic() + (30.0 if wait else STOP_GRACE_SECONDS)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> int:
        """Worker threads still running (for tests and diagnostics)."""
        return sum(thread.is_alive() for thread in self._threads)


def _process_main(conn: Any, spec: WorkerSpec, threads: int = 1,
                  task_seconds: float | None = None) -> None:
    """A worker process: build the worker once, say it is ready, serve batches of
    tasks, close it; with ``threads`` > 1, see :class:`_ThreadedServer`.

    Results go back one message per batch (or every ``_FLUSH_SECONDS`` within a slow
    batch): one message per task would make the parent's pipe reads the bottleneck.
    """
    # Ctrl-C reaches the whole process group, and so does a SIGTERM from a shell,
    # `timeout` or systemd: the parent decides what either means (drain, then stop us).
    for signum in _PARENTS_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if threads > 1:
        _ThreadedServer(conn, spec, threads, task_seconds).run()
        return
    worker, init_error = build(spec)
    try:
        conn.send(_READY)
    except (EOFError, OSError):
        close(worker)
        return
    try:
        _serve(conn, worker, init_error)
    finally:
        close(worker)


def _serve(conn: Any, worker: Worker | None, init_error: str) -> None:
    """Run the tasks the parent sends, in order; between two tasks, read what else it
    sent: more batches, :data:`_CANCEL` (drop the tasks not started, and say which),
    or ``None`` (stop)."""
    queued: deque[tuple[int, Any]] = deque()
    results: Completed = []
    flushed_at = time.monotonic()
    while True:
        try:
            while not queued or conn.poll():
                message = conn.recv()
                if message is None:
                    _send_results(conn, results)
                    return
                if message == _CANCEL:
                    if results and not _send_results(conn, results):
                        return
                    results = []
                    conn.send((_CANCEL, [task_id for task_id, _ in queued]))
                    queued.clear()
                else:
                    queued.extend(message)
        except (EOFError, OSError):
            return
        task_id, payload = queued.popleft()
        try:
            outcome = capture(worker, payload, init_error)
        except BaseException as exc:  # noqa: BLE001 - an interrupt: the parent's to raise
            outcome = ("raise", exc)
        results.append((task_id, outcome))
        if not queued or time.monotonic() - flushed_at >= _FLUSH_SECONDS:
            if not _send_results(conn, results):
                return
            results, flushed_at = [], time.monotonic()


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
                error = f"UnpicklableResult: {type(exc).__name__}: {exc}"
                safe.append((task_id, ("error", error)))
    try:
        conn.send(safe)
        return True
    except (EOFError, OSError):
        return False


class _ThreadedServer:
    """One worker process running ``threads`` worker threads (``--threads``).

    ::

        parent ─ pipe ─► main thread: recv ─► task queue ─► N threads, one worker each
        parent ◄─ pipe ─ sender thread ◄── outbox (results, replies) ◄──┘

    The main thread only reads the pipe: batches go to the task queue, ``_CANCEL``
    drops the tasks no thread has taken (and says which), ``None`` (or a closed
    pipe) stops: queued tasks are dropped, running ones finish, each thread closes
    its worker. Each thread builds its worker once, when it starts. The sender
    thread sends whatever results have piled up as one message, so a burst of
    answers costs one pipe write, not one per task. The process answers as a whole:
    if it dies, the parent reports every task it held lost, as for one thread.

    A task running past ``task_seconds`` (a call that ignores every timeout) is
    ``failed`` with ``WorkerTimeout`` by the sender thread, which looks every
    :data:`_WATCH_SECONDS`; its thread is abandoned (its late answer is dropped, its
    worker closed when it returns) and a new thread takes its place, so the
    process's other threads go on. The parent still kills a process that sends
    nothing at all for ``task_seconds`` (stopped, deadlocked).
    """

    def __init__(self, conn: Any, spec: WorkerSpec, threads: int,
                 task_seconds: float | None = None) -> None:
        self.conn = conn
        self.spec = spec
        self.threads = threads
        self.task_seconds = task_seconds
        self.tasks: queue.SimpleQueue[tuple[int, Any] | None] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.lock = threading.Lock()
        # thread ident -> (task id, started): the task each busy thread runs
        self.running: dict[int, tuple[int, float]] = {}
        self.abandoned: set[int] = set()
        self.workers: list[threading.Thread] = []
        self.watched = 0.0  # when the sender last looked for overdue tasks

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"geofetch-worker-{len(self.workers)}")
        self.workers.append(thread)
        thread.start()

    def run(self) -> None:
        for _ in range(self.threads):
            self._start_thread()
        sender = threading.Thread(target=self._send, daemon=True, name="geofetch-sender")
        sender.start()
        self.ready.wait()  # one worker built: the task's module imports in this process
        self.outbox.put(("message", _READY))
        try:
            while True:
                message = self.conn.recv()
                if message is None:
                    break
                if message == _CANCEL:
                    self.outbox.put(("message", (_CANCEL, self._drop_queued())))
                else:
                    for task in message:
                        self.tasks.put(task)
        except (EOFError, OSError):
            pass
        self._drop_queued()
        with self.lock:
            workers = [t for t in self.workers if t.ident not in self.abandoned]
            self.task_seconds = None  # no replacement threads from here on
        for _ in workers:
            self.tasks.put(None)
        for thread in workers:
            thread.join()
        self.outbox.put(None)
        sender.join()

    def _drop_queued(self) -> list[int]:
        dropped: list[int] = []
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                return dropped
            if task is not None:
                dropped.append(task[0])

    def _work(self) -> None:
        me = threading.get_ident()
        worker, init_error = build(self.spec)
        self.ready.set()
        try:
            while (task := self.tasks.get()) is not None:
                task_id, payload = task
                if self.task_seconds is not None:
                    self.running[me] = (task_id, time.monotonic())
                try:
                    outcome = capture(worker, payload, init_error)
                except BaseException as exc:  # noqa: BLE001 - an interrupt: the parent's
                    outcome = ("raise", exc)
                with self.lock:
                    self.running.pop(me, None)
                    if me in self.abandoned:
                        return  # its task was already failed: this answer is too late
                self.outbox.put(("result", (task_id, outcome)))
        finally:
            close(worker)

    def _overdue(self) -> None:
        """Fail every task past ``task_seconds``; abandon and replace its thread."""
        seconds = self.task_seconds
        now = time.monotonic()
        if seconds is None or not self.running or now - self.watched < _WATCH_SECONDS:
            return
        self.watched = now
        limit = now - seconds
        with self.lock:
            if self.task_seconds is None:
                return  # stopping: no replacement threads
            for ident, (task_id, started) in list(self.running.items()):
                if started < limit:
                    del self.running[ident]
                    self.abandoned.add(ident)
                    error = (f"WorkerTimeout: no result within {seconds:g} s; the worker "
                             "thread was abandoned")
                    self.outbox.put(("result", (task_id, ("error", error))))
                    self._start_thread()

    def _send(self) -> None:
        """Send the outbox in order: results in one message per burst, replies as
        they are; stop at ``None``."""
        broken = False
        watch = None if self.task_seconds is None else _WATCH_SECONDS
        while True:
            try:
                item = self.outbox.get(timeout=watch)
            except queue.Empty:
                self._overdue()
                continue
            self._overdue()
            items = [item]
            while item is not None:
                try:
                    item = self.outbox.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
            results: Completed = []
            for entry in items:
                if entry is not None and entry[0] == "result":
                    results.append(entry[1])
                    continue
                if results and not broken:
                    broken = not _send_results(self.conn, results)
                results = []
                if entry is None:
                    return
                if not broken:
                    try:
                        self.conn.send(entry[1])
                    except (EOFError, OSError):
                        broken = True
            if results and not broken:
                broken = not _send_results(self.conn, results)


class _Worker:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.outstanding: deque[tuple[int, Any]] = deque()
        self.dead = False
        self.ready = False  # it built its worker (so it imported the task)
        self.answered = False  # it finished a task
        self.suspect = False
        self.progress_at = time.monotonic()  # its last answer, or work given when idle
        self.timed_out = False
        self.orphan = False  # its forkserver died: watched through its pipe alone
        self.exited = False  # (an orphan) its pipe reached EOF


class ProcessExecutor(Executor):
    """Worker processes fed through one pipe each, healed when one dies or hangs;
    ``threads`` worker threads in each (default 1).

    A worker that holds tasks and sends nothing for ``task_seconds`` (stopped,
    deadlocked, stuck in a call that ignores timeouts) is killed and replaced; its
    tasks are lost ones (run again alone once, then ``failed``: ``WorkerTimeout``).

    When the pool cannot keep workers alive (:data:`_MAX_FAILED_STARTS` in a row die
    before finishing a task), it stops starting them: every task held or still to
    come is ``failed`` with ``WorkerDied``, and the run ends with those rows. Only
    when those workers all exited with an error during start-up, before they could
    build their worker (a signal is not an error), is it raised instead as
    :class:`~geofetch.exceptions.WorkerStartError` with the ``__main__`` hint: that
    is how a script without an ``if __name__ == "__main__":`` guard fails.
    """

    kind = "process"

    def __init__(
        self,
        workers: int,
        *,
        threads: int = 1,
        start_method: str | None = None,
        prefetch: int = 2,
        batch: int = 16,
    ) -> None:
        self.workers = workers
        self.threads = threads
        self._spec: WorkerSpec | None = None
        self._ctx: Any = multiprocessing.get_context(start_method or default_start_method())
        self._prefetch = prefetch
        self._batch = max(batch, threads)  # a batch keeps every thread of a process busy
        self._pending: deque[tuple[int, Any]] = deque()
        self._suspects: deque[tuple[int, Any]] = deque()
        self._pool: list[_Worker] = []
        self._closed = False
        self._failed_starts = 0
        self._start_errors = 0  # of those, deaths by an error exit before being ready
        self._task_seconds: float | None = None
        self._broken: str | None = None  # why the pool gave up on its workers
        self._given_up: Completed = []
        self._start_failure = ""  # why the last start of a worker process failed

    def start(self, spec: WorkerSpec, *, task_seconds: float | None = None) -> None:
        """Start ``workers`` processes; each builds its worker from ``spec`` once."""
        self._spec = spec
        self._task_seconds = task_seconds
        self._replenish([])

    @property
    def capacity(self) -> int:
        return self.workers * self._prefetch * self._batch

    def _replenish(self, done: Completed) -> None:
        """Start workers until the pool is full again.

        A worker that cannot be started (the forkserver was killed: its socket
        refuses, or it closes before answering; :data:`_START_TRIES` tries) counts
        as a worker that died at start: :data:`_MAX_FAILED_STARTS` in a row give up
        on the pool, failing its tasks (never an internal error, never a lost row).
        """
        while (not self._closed and self._broken is None
               and len([w for w in self._pool if not w.dead]) < self.workers):
            worker = self._spawn()
            if worker is not None:
                self._pool.append(worker)
                continue
            self._failed_starts += 1
            self._start_errors = 0  # not the script's fault: no __main__ hint
            if self._failed_starts >= _MAX_FAILED_STARTS:
                self._give_up(f"a start that failed: {self._start_failure}", done)
            return  # try again on the next call

    def _spawn(self) -> _Worker | None:
        """One new worker process, or None if it could not be started."""
        for attempt in range(_START_TRIES):
            if attempt:
                time.sleep(_START_PAUSE)  # let the dead forkserver be reaped, restarted
            try:
                return self._start_process()
            except (OSError, EOFError) as exc:  # the forkserver died under us
                self._start_failure = describe(exc)
                log.warning("starting a worker process failed (try %d of %d): %s",
                            attempt + 1, _START_TRIES, self._start_failure)
        return None

    def _start_process(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_process_main,
            # A thread's own timeout fires before the parent's silence rule would
            # kill the whole process (and every row its other threads hold).
            args=(child_conn, self._spec, self.threads,
                  None if self._task_seconds is None else self._task_seconds * 0.8),
            name="geofetch-worker",
            daemon=True,
        )
        unset = multiprocessing.get_start_method(allow_none=True) is None
        try:
            process.start()
        except BaseException:
            parent_conn.close()  # a child forked before the failure reads EOF and exits
            child_conn.close()
            raise
        finally:
            if unset and multiprocessing.get_start_method(allow_none=True) is not None:
                # Starting a forkserver or spawn process pins the host's default start
                # method as a side effect (multiprocessing.spawn.get_preparation_data
                # asks for it): give the host back its unset default.
                multiprocessing.set_start_method(None, force=True)
        child_conn.close()
        return _Worker(process, parent_conn)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._pool if not w.dead]

    def submit(self, task_id: int, payload: Any, *, alone: bool = False) -> None:
        if self._broken is not None:
            self._given_up.append((task_id, ("error", self._broken)))
            return
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
        for depth in range(1, self._prefetch + 1):  # one batch each, then a second each
            for worker in live:
                if not self._pending:
                    return
                if worker.suspect or len(worker.outstanding) >= depth * share:
                    continue
                batch = [self._pending.popleft() for _ in range(min(share, len(self._pending)))]
                self._send(worker, batch)  # a failed send: its sentinel reports the death

    def _send(self, worker: _Worker, batch: list[tuple[int, Any]], suspect: bool = False) -> bool:
        if not worker.outstanding:
            worker.progress_at = time.monotonic()
        worker.outstanding.extend(batch)
        worker.suspect = suspect
        try:
            worker.conn.send(batch)
            return True
        except (OSError, EOFError):
            return False  # it died: its sentinel reports it, its tasks come back

    def completed(self, timeout: float | None) -> Completed:
        done, self._given_up = self._given_up, []
        self._dispatch()
        live = [w for w in self._pool if not w.dead]
        handles = [w.conn for w in live] + [w.process.sentinel for w in live
                                            if not w.orphan]
        if done or not handles:
            timeout = 0
        elif self._task_seconds is not None and timeout is not None:
            timeout = min(timeout, self._task_seconds)
        ready = set(wait_for_ready(handles, timeout)) if handles else set()
        for worker in live:
            if worker not in self._pool:
                continue  # the pool was stopped meanwhile
            if worker.conn in ready:
                self._receive(worker, done)
            if not worker.orphan and worker.process.sentinel in ready:
                self._receive(worker, done)  # a worker that exited: its pipe is at EOF
                if not worker.dead and self._orphaned(worker):
                    continue
                self._bury(worker, done)
            elif worker.dead:
                self._bury(worker, done)
        self._kill_hung(done)
        self._replenish(done)
        self._dispatch()
        return done

    def _orphaned(self, worker: _Worker) -> bool:
        """Whether a worker whose sentinel fired is alive after all, its forkserver
        gone (killed, or a SIGTERM to the process group): a forkserver child's
        sentinel is a pipe from the forkserver, which closes without an exit status
        (multiprocessing then reports code 255) while the worker's own pipe, read up
        to EOF by the caller, is still open. From then on the worker is watched
        through its pipe alone: EOF there is its death."""
        if self._ctx.get_start_method() != "forkserver" or worker.process.exitcode != 255:
            return False
        worker.orphan = True
        log.warning("the forkserver of worker process %s is gone; the worker goes on",
                    worker.process.pid)
        return True

    @staticmethod
    def _signal(worker: _Worker, signum: int) -> None:
        """Send ``signum`` to a worker still running (an orphan by its pid: its
        ``Process`` object already counts it exited)."""
        if not worker.orphan:
            if worker.process.is_alive():
                os.kill(worker.process.pid, signum)
            return
        if not worker.exited:
            try:
                os.kill(worker.process.pid, signum)
            except ProcessLookupError:
                worker.exited = True

    @staticmethod
    def _join(worker: _Worker, timeout: float) -> None:
        """Wait up to ``timeout`` s for a worker to exit (an orphan: for EOF on its pipe)."""
        if not worker.orphan:
            worker.process.join(timeout)
            return
        until = time.monotonic() + timeout
        while not worker.exited:
            if not wait_for_ready([worker.conn], max(0.0, until - time.monotonic())):
                return
            try:
                worker.conn.recv()
            except (EOFError, OSError):
                worker.exited = True

    @staticmethod
    def _running(worker: _Worker) -> bool:
        return not worker.exited if worker.orphan else worker.process.is_alive()

    def cancel_queued(self) -> list[int]:
        """Drop the tasks not yet sent, and ask each worker to drop those it holds but
        has not started (they come back as ``("cancelled", None)`` outcomes)."""
        dropped = [task_id for task_id, _ in [*self._pending, *self._suspects]]
        self._pending.clear()
        self._suspects.clear()
        for worker in self._pool:
            if not worker.dead and worker.outstanding:
                try:
                    worker.conn.send(_CANCEL)
                except (OSError, EOFError):
                    pass  # it died: its sentinel reports it
        return dropped

    def _kill_hung(self, done: Completed) -> None:
        """Kill (and so replace) every worker that has held tasks too long in silence."""
        if self._task_seconds is None:
            return
        limit = time.monotonic() - self._task_seconds
        for worker in [w for w in self._pool if not w.dead]:
            if worker.outstanding and worker.progress_at < limit:
                worker.timed_out = True
                self._signal(worker, signal.SIGKILL)  # ends even a stopped (SIGSTOP) one
                self._bury(worker, done)

    def _receive(self, worker: _Worker, done: Completed) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == _READY:
                    worker.ready = True
                    continue
                if isinstance(message, tuple) and message[0] == _CANCEL:
                    for task_id in message[1]:
                        self._forget(worker, task_id)
                        done.append((task_id, ("cancelled", None)))
                    continue
                for task_id, outcome in message:
                    self._forget(worker, task_id)
                    done.append((task_id, outcome))
                worker.answered = True
                worker.progress_at = time.monotonic()
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
        """A worker died (or was killed, hung): report every task it held lost, and
        replace it.

        Which of a batch's tasks killed it is unknown, so each is reported lost; the
        engine runs a lost task again alone (``alone=True``), where a second death
        names the culprit and the others simply finish.
        """
        if worker not in self._pool:
            return  # already stopped with the pool (it gave up on its workers)
        self._receive(worker, done)  # answers it sent before dying still count
        worker.dead = True
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        if worker.orphan:  # its exit status went with the forkserver
            code = None
            cause = "a status unknown (its forkserver was gone)"
        else:
            cause = f"signal {-code}" if code is not None and code < 0 else f"code {code}"
        if worker.timed_out:
            error = (f"WorkerTimeout: the worker process sent nothing for "
                     f"{self._task_seconds:g} s and was killed")
        else:
            error = f"WorkerDied: worker process exited with {cause}"
        for task_id, _ in worker.outstanding:
            done.append((task_id, ("lost", error)))
        worker.outstanding.clear()
        worker.conn.close()
        self._pool.remove(worker)
        if worker.answered or worker.timed_out:
            self._failed_starts = self._start_errors = 0
        else:
            self._failed_starts += 1
            error_exit = code is not None and code > 0 and not worker.ready
            self._start_errors = self._start_errors + 1 if error_exit else 0
        if self._failed_starts >= _MAX_FAILED_STARTS:
            self._give_up(cause, done)
            return
        self._replenish(done)

    def _give_up(self, cause: str, done: Completed) -> None:
        """Stop starting workers: fail every task held or to come (or, for a script
        without a ``__main__`` guard, raise WorkerStartError)."""
        if self._start_errors >= _MAX_FAILED_STARTS:
            self.stop(wait=False)
            raise WorkerStartError(
                f"{_MAX_FAILED_STARTS} worker processes in a row exited with an error "
                f"while starting, before they could run a task (the last with {cause}); "
                "a script that uses executor='process' must guard its entry point with "
                "`if __name__ == '__main__':`")
        self._broken = (f"WorkerDied: the pool could not keep worker processes alive: "
                        f"{_MAX_FAILED_STARTS} in a row died before finishing a task "
                        f"(the last exited with {cause})")
        for task_id, _ in [*self._pending, *self._suspects]:
            done.append((task_id, ("error", self._broken)))
        for worker in self._pool:
            for task_id, _ in worker.outstanding:
                done.append((task_id, ("error", self._broken)))
            worker.outstanding.clear()
        self._pending.clear()
        self._suspects.clear()
        self.stop(wait=False)

    def stop(self, *, wait: bool = True) -> None:
        """Ask every worker to close and exit; terminate, then kill, those that don't."""
        self._closed = True
        self._pending.clear()
        self._suspects.clear()
        for worker in self._pool:
            try:
                worker.conn.send(None)
            except (OSError, EOFError, ValueError):
                pass
        grace = 30.0 if wait else STOP_GRACE_SECONDS / 2
        # A worker ignores SIGTERM (see _PARENTS_SIGNALS): SIGKILL is the last resort.
        for step, deadline in (("wait", grace), ("kill", 5.0)):
            until = time.monotonic() + deadline
            for worker in self._pool:
                if step == "kill":
                    self._signal(worker, signal.SIGKILL)
            for worker in self._pool:
                self._join(worker, max(0.0, until - time.monotonic()))
            if not any(self._running(worker) for worker in self._pool):
                break
        for worker in self._pool:
            worker.conn.close()
        self._pool.clear()


def default_start_method() -> str:
    """``forkserver`` where the platform has it, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def make_executor(kind: str, workers: int | None = None, *, threads: int = 1,
                  options: RunOptions | None = None) -> Executor:
    """A new executor called ``kind`` with ``workers`` workers (its default if None)
    and ``threads`` threads in each worker process (``process``, ``dask``);
    :meth:`Executor.start` it with a worker spec before submitting. ``options``
    (scheduler, client, chunk) serve the dask executor."""
    if kind == "dask":
        try:
            from .dask_executor import DaskExecutor
        except ImportError:
            raise UsageError("executor dask needs dask.distributed and redis: "
                             "pip install 'geofetch[dask]'") from None

        return DaskExecutor.from_options(workers, threads, options)
    if kind not in EXECUTORS:
        raise UsageError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if workers is None:
        workers = default_workers(kind)
    if workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")
    if threads < 1 or (threads > 1 and kind != "process"):
        raise UsageError(f"threads={threads}: threads inside worker processes need "
                         f"executor='process' and at least 1, not {kind!r}")
    if kind == "serial":
        return SerialExecutor()
    if kind == "thread":
        return ThreadExecutor(workers)
    return ProcessExecutor(workers, threads=threads)
