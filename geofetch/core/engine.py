"""Ordered, streaming execution of a task per input item.

::

    items ──► plan(item) ──┬─ known result (invalid, cached) ──────────────┐
      (read lazily,        ├─ same key already in flight: wait for it ─────┤
       at most `window`    └─ submit(payload) ─► executor ─► outcome ──────┤
       ahead of output)                                                    ▼
                                                  reorder buffer ─► results in input order

The engine reads the input only as far as ``window`` items ahead of what it has
yielded, so memory is bounded whatever the input size: the tasks in flight and
the reorder buffer together never exceed ``window``. Identical keys in flight are
asked once. A task whose worker process died is retried once, then failed. Every
outcome becomes exactly one result per item: nothing is lost or duplicated. A
``KeyboardInterrupt`` raised inside a task is raised here, in the caller's thread.

The engine neither starts nor stops the executor: the job that owns it does
(:mod:`geofetch.core.job`), so workers are closed on every exit path.

Stopping: :meth:`Run.stop` (credentials refused, budget spent) makes every item
not yet submitted finish with ``stopped(item)``; :meth:`Run.interrupt` (a signal)
stops reading, waits up to ``grace`` seconds for tasks in flight, yields the
contiguous finished prefix, then raises the given exception. A task whose worker
is lost once the run is interrupted (a signal to the process group reaches the
workers too) is not done: it gets no result, never a ``failed`` one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .executors import Executor

T = TypeVar("T")
R = TypeVar("R")

#: How often (seconds) the engine looks up from waiting to notice a stop request.
_POLL = 0.2


@dataclass
class Plan:
    """How the engine treats one item: a known ``result``, or a task.

    Tasks with equal, non-None ``key`` run once; ``payload`` is what the worker gets.
    """

    result: Any = None
    key: Hashable | None = None
    payload: Any = None


@dataclass
class _Task:
    payload: Any
    key: Hashable | None
    rows: list[int]
    lost: int = 0


class Run(Generic[T, R]):
    """One run: iterate it for results in input order.

    ``plan(item)`` decides what to do with an item; ``finish(item, value)`` turns a
    worker's value into the item's result; ``fail(item, "Class: message")`` makes
    the result of a task that raised or was lost; ``stopped(item)`` the result of an
    item left undone after :meth:`stop`; ``on_value(key, value)`` sees each fresh
    value once (to cache it).
    """

    def __init__(
        self,
        items: Iterable[T],
        executor: Executor,
        *,
        plan: Callable[[T], Plan],
        finish: Callable[[T, Any], R],
        fail: Callable[[T, str], R],
        stopped: Callable[[T], R] | None = None,
        on_value: Callable[[Hashable | None, Any], None] | None = None,
        window: int | None = None,
        grace: float = 2.0,
        lost_retries: int = 1,
    ) -> None:
        self._items = iter(items)
        self._executor = executor
        self._plan = plan
        self._finish = finish
        self._fail = fail
        self._stopped = stopped
        self._on_value = on_value
        if window is None:
            window = 1 if executor.capacity == 1 else max(256, 2 * executor.capacity)
        self.window = window
        self.grace = grace
        self.lost_retries = lost_retries
        self._stop = False
        self._interrupt: BaseException | None = None
        self.submitted = 0
        #: True once every item has its result (the executor may then wait for idle workers).
        self.finished = False

    def stop(self) -> None:
        """Submit nothing more; items not yet submitted finish with ``stopped``."""
        self._stop = True

    def interrupt(self, exc: BaseException) -> None:
        """Stop reading, drain within ``grace`` seconds, then raise ``exc`` (thread-safe)."""
        self._interrupt = exc

    def __iter__(self) -> Iterator[R]:
        executor = self._executor
        pending: dict[int, T] = {}  # row -> item, for rows not yet resolved
        ready: dict[int, R] = {}  # row -> result, waiting for its turn
        tasks: dict[int, _Task] = {}
        by_key: dict[Hashable, int] = {}
        next_in = next_out = 0
        exhausted = False
        drain_until: float | None = None

        def settle(task_id: int, kind: str, value: Any) -> None:
            if kind == "raise":
                raise value
            if kind == "cancelled" or (kind == "lost" and self._interrupt is not None):
                # Dropped unstarted on an interrupt, or its worker died once the run was
                # interrupted (a signal to the whole process group reaches the workers
                # too): the row is not done, so it has no result, never a failed one.
                dropped = tasks.pop(task_id, None)
                if dropped is not None and dropped.key is not None:
                    by_key.pop(dropped.key, None)
                return
            task = tasks[task_id]
            if kind == "lost" and task.lost < self.lost_retries:
                task.lost += 1
                executor.submit(task_id, task.payload, alone=True)
                return
            del tasks[task_id]
            if task.key is not None:
                by_key.pop(task.key, None)
            if kind == "value" and self._on_value is not None:
                self._on_value(task.key, value)
            for row in task.rows:
                item = pending.pop(row)
                if kind == "value":
                    ready[row] = self._finish(item, value)
                else:
                    ready[row] = self._fail(item, value)

        while True:
            if self._interrupt is not None and drain_until is None:
                drain_until = time.monotonic() + self.grace
                for task_id in executor.cancel_queued():  # wait only for those running
                    task = tasks.pop(task_id, None)
                    if task is not None and task.key is not None:
                        by_key.pop(task.key, None)
            # Read ahead, within the window.
            while not exhausted and drain_until is None and next_in - next_out < self.window:
                try:
                    item = next(self._items)
                except StopIteration:
                    exhausted = True
                    break
                row, next_in = next_in, next_in + 1
                if self._stop and self._stopped is not None:
                    ready[row] = self._stopped(item)
                    continue
                plan = self._plan(item)
                if plan.result is not None:
                    ready[row] = plan.result
                    continue
                pending[row] = item
                if plan.key is not None and plan.key in by_key:
                    tasks[by_key[plan.key]].rows.append(row)
                    continue
                task_id = self.submitted
                self.submitted += 1
                tasks[task_id] = _Task(plan.payload, plan.key, [row])
                if plan.key is not None:
                    by_key[plan.key] = task_id
                executor.submit(task_id, plan.payload)
            # Hand out what is ready, in order.
            while next_out in ready:
                result = ready.pop(next_out)
                next_out += 1
                yield result
            if not tasks:
                if drain_until is not None and self._interrupt is not None:
                    raise self._interrupt
                if exhausted:
                    self.finished = True
                    return
                continue
            if drain_until is not None and time.monotonic() >= drain_until:
                assert self._interrupt is not None
                raise self._interrupt
            try:
                for task_id, (kind, value) in executor.completed(timeout=_POLL):
                    settle(task_id, kind, value)
            except KeyboardInterrupt as exc:
                if self._interrupt is None:
                    self._interrupt = exc
