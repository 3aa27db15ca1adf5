"""One request gate for the whole run: rate limit, budget and abort, shared by
every thread and every process.

Design: GCRA (the generic cell rate algorithm, a token bucket of depth 1 written as
a single "theoretical arrival time", TAT). Each request reserves the next free slot:
``start = max(TAT, now)``, ``TAT = start + 1/rate``, then sleeps until ``start``.
Slots are spaced exactly ``1/rate`` apart, so any one-second window holds at most
``rate`` scheduled sends (``rate + 1`` once network jitter is allowed for), and
when workers are faster than the rate the slots are back to back, so a long run
achieves the full rate. A 429 / ``OVER_QUERY_LIMIT`` moves TAT forward for
everyone (:meth:`RequestGate.defer`), so the whole run backs off at once.

Slots are spaced ``1 / (HEADROOM * rate)`` rather than exactly ``1 / rate``, and a
worker is released no sooner than ``1 / rate`` after the previous actual release:
a worker that wakes late (scheduling, the GIL) and the next one on time would
otherwise land ``rate + 2`` requests in some one-second window at the server. The
2.5% headroom lets the schedule make up such a delay, and a long run still achieves
97.5% of the rate.

The state lives in a small file mapped into memory (``mmap``), created by the
parent before any worker starts and reopened by path in each worker (on Linux a
nameless ``memfd`` file reached through ``/proc/<parent pid>/fd/N``, so even a
SIGKILL of every process leaves nothing in /dev/shm; see :func:`shared_file`): a module
global would be rebuilt in every ``spawn``/``forkserver`` child and multiply the
rate. Updates are serialised by ``fcntl.flock`` on a descriptor each process opens
itself: the kernel drops that lock when a holder dies, even by SIGKILL, whereas a
``multiprocessing.Lock`` held by a killed worker stays locked forever. A
``threading.Lock`` orders the threads of one process (flock is per descriptor,
not per thread). ``time.monotonic`` is one clock for every process on the machine.

The same record counts requests against ``max_requests`` and carries the reason a
run was aborted (credentials refused, budget spent), so one worker's discovery
stops every other worker before its next request.

**Backing off together (AIMD).** A rate-limit answer (:meth:`RequestGate.throttled`)
halves the run's current rate, for every thread and process at once, as TCP halves
its window on a loss and Scrapy's AutoThrottle slows a crawl: the halving happens
once per round of requests (only for an answer to a request sent after the last
halving, so a burst of answers to requests already in flight counts once), down to
1/64 of the configured rate (0.1/s for a run without one, which starts from the
rate observed over the last second). Each clean answer (:meth:`RequestGate.succeeded`)
adds back 1/20 of the configured rate, up to it. ``max_throttled`` rate-limit
answers in a row, with no clean answer between them, stop the run
(:class:`~geofetch.exceptions.Throttled`) as a spent quota does.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from ..exceptions import (
    BudgetExhausted,
    RequestDenied,
    RunAborted,
    Throttled,
    UsageError,
    WaitTooLong,
)

# TAT (float seconds), requests sent (int), abort kind (int), reason length (int)
_HEADER = struct.Struct("<dqii")
_REASON_MAX = 400
# The back-off state: current rate (0: none), halve only for tickets after this one,
# rate-limit answers in a row, in all, start of the current 1 s window, requests in it,
# requests in the window before.
_AIMD = struct.Struct("<dqqqdqq")
_AIMD_AT = 424
# The last actual release time (float seconds) sits at the end of the record.
_RELEASE = struct.Struct("<d")
_RELEASE_AT = 504
#: Fraction of the nominal rate actually scheduled (see the module docstring).
HEADROOM = 0.975
_SIZE = 512
#: The lowest a rate is halved to: this fraction of the configured rate ...
FLOOR_FRACTION = 1 / 64
#: ... or this many requests per second for a run without a configured rate.
FLOOR_UNLIMITED = 0.1
#: A clean answer adds back this fraction of the configured rate.
RECOVERY_FRACTION = 1 / 20
_ABORT_CLASSES: dict[int, type[RunAborted]] = {
    1: RequestDenied, 2: BudgetExhausted, 3: Throttled, 4: WaitTooLong,
}
_ABORT_KINDS = {cls: kind for kind, cls in _ABORT_CLASSES.items()}
# Sleep in short steps so a sleeping worker notices an abort promptly.
_SLEEP_STEP = 0.25


class RequestGate:
    """What every request passes through before it is sent.

    ``rate`` is requests per second for the whole run (``None`` or 0: no limit);
    ``max_requests`` caps the requests of the run, retries included (``None``: no cap);
    ``max_throttled`` rate-limit answers in a row stop the run (``None``: never).
    Picklable: a copy in another process shares the same state. ``processes=False``
    (a thread or serial run) skips the cross-process ``flock``: two system calls
    per request, each a chance for another thread to take the GIL.
    """

    def __init__(
        self,
        rate: float | None = None,
        max_requests: int | None = None,
        *,
        max_throttled: int | None = None,
        processes: bool = True,
        _clock: Callable[[], float] = time.monotonic,
        _sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and (not math.isfinite(rate) or rate < 0):
            raise UsageError(f"rate must be a positive number of requests per second, not {rate}")
        if max_requests is not None and max_requests < 0:
            raise UsageError(f"max_requests must be 0 or more, not {max_requests}")
        self.rate = rate or None
        self.max_requests = max_requests
        self.max_throttled = max_throttled
        self.processes = processes
        self._clock = _clock
        self._sleep = _sleep
        self._owner_pid = os.getpid()
        self._pid: int | None = None
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._thread_lock = threading.Lock()
        self.path: str | None = None
        self._held: int | None = None  # the creator's descriptor of a nameless record
        if processes:
            self._held, self.path = shared_file("geofetch-gate", self._initial_record())
        else:  # one process: an anonymous map, no file to leave behind
            self._map = mmap.mmap(-1, _SIZE)
            self._map[:] = self._initial_record()
            self._pid = _pid

    def _initial_record(self) -> bytes:
        record = bytearray(_SIZE)
        _AIMD.pack_into(record, _AIMD_AT, self.rate or 0.0, 0, 0, 0, self._clock(), 0, 0)
        return bytes(record)

    def _reset_local(self) -> None:
        self._pid = None
        self._fd = None
        self._map = None
        self._thread_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        if not self.processes:
            raise TypeError("this RequestGate was made with processes=False: it cannot be "
                            "shared with another process")
        state = self.__dict__.copy()
        for name in ("_pid", "_fd", "_map", "_thread_lock", "_clock", "_sleep", "_held"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._held = None
        self._clock = time.monotonic
        self._sleep = time.sleep
        self._reset_local()

    # -- shared record ----------------------------------------------------------

    def _mapped(self) -> mmap.mmap:
        if self._pid != _pid and self.path is not None:  # first use in this process
            with _open_lock:  # many threads may get here at once: open exactly once
                if self._pid != _pid:
                    self._thread_lock = threading.Lock()
                    self._fd = os.open(self.path, os.O_RDWR)
                    self._map = mmap.mmap(self._fd, _SIZE)
                    self._pid = _pid  # last: the others now skip this block
        assert self._map is not None
        return self._map

    def _locked(self) -> _Locked:
        return _Locked(self)

    def _read(self) -> tuple[float, int, int, str]:
        data = self._mapped()
        tat, count, kind, length = _HEADER.unpack_from(data, 0)
        reason = bytes(data[_HEADER.size : _HEADER.size + length]).decode("utf-8", "replace")
        return tat, count, kind, reason

    def _write(self, tat: float, count: int) -> None:
        data = self._mapped()
        _, _, kind, length = _HEADER.unpack_from(data, 0)
        _HEADER.pack_into(data, 0, tat, count, kind, length)

    # -- public -----------------------------------------------------------------

    def acquire(self) -> int:
        """Wait for this request's slot; return its ticket (1 for the run's first
        request, 2 for the next, ...); raise :class:`RunAborted` if the run stopped."""
        with self._locked():
            tat, count, kind, reason = self._read()
            if kind:
                raise _ABORT_CLASSES[kind](reason)
            if self.max_requests is not None and count >= self.max_requests:
                reason = f"budget exhausted: max_requests={self.max_requests} spent"
                self._set_abort(BudgetExhausted, reason)
                raise BudgetExhausted(reason)
            now = self._clock()
            data = self._mapped()
            rate, cut_after, in_row, total, window, in_window, before = _AIMD.unpack_from(
                data, _AIMD_AT)
            if now - window >= 1.0:  # a new one-second window (for a run without a rate)
                before = in_window if now - window < 2.0 else 0
                window, in_window = now, 0
            _AIMD.pack_into(data, _AIMD_AT, rate, cut_after, in_row, total, window,
                            in_window + 1, before)
            start = now
            if rate:
                start = max(tat, now)
                tat = start + 1.0 / (HEADROOM * rate)
            self._write(tat, count + 1)
        self._wait_until(start)
        if rate:
            self._release(rate)
        return count + 1

    def throttled(self, ticket: int) -> None:
        """Request ``ticket`` got a rate-limit answer: slow the whole run (see the
        module docstring); stop it after ``max_throttled`` such answers in a row."""
        with self._locked():
            data = self._mapped()
            _, count, kind, _ = _HEADER.unpack_from(data, 0)
            rate, cut_after, in_row, total, window, in_window, before = _AIMD.unpack_from(
                data, _AIMD_AT)
            in_row, total = in_row + 1, total + 1
            if ticket > cut_after:
                if self.rate:
                    base, floor = rate or self.rate, self.rate * FLOOR_FRACTION
                else:
                    base, floor = rate or float(max(before, in_window, 1)), FLOOR_UNLIMITED
                rate, cut_after = max(floor, base / 2), count
            _AIMD.pack_into(data, _AIMD_AT, rate, cut_after, in_row, total, window,
                            in_window, before)
            if self.max_throttled is not None and in_row >= self.max_throttled and not kind:
                self._set_abort(Throttled, (
                    f"{in_row} rate-limit answers in a row (--max-throttled "
                    f"{self.max_throttled}), the last at {rate:.3g} requests/s: the "
                    "provider's quota looks spent"))

    def succeeded(self) -> None:
        """A clean answer: the run speeds up again, by steps, to its configured rate."""
        with self._locked():
            data = self._mapped()
            rate, cut_after, in_row, total, window, in_window, before = _AIMD.unpack_from(
                data, _AIMD_AT)
            if not in_row and (not rate or rate == self.rate):
                return  # nothing to recover (the common case: no write)
            if self.rate:
                rate = min(self.rate, rate + self.rate * RECOVERY_FRACTION)
            elif rate:
                rate *= 1 + RECOVERY_FRACTION
            _AIMD.pack_into(data, _AIMD_AT, rate, cut_after, 0, total, window, in_window,
                            before)

    @property
    def throttle_count(self) -> int:
        """Rate-limit answers seen by the whole run."""
        return int(_AIMD.unpack_from(self._mapped(), _AIMD_AT)[3])

    @property
    def current_rate(self) -> float | None:
        """The rate in force now (requests per second; None: no limit)."""
        rate = float(_AIMD.unpack_from(self._mapped(), _AIMD_AT)[0])
        return rate or None

    def _release(self, rate: float) -> None:
        """Keep actual sends at least ``1 / rate`` apart.

        A worker that wakes late for its slot must not land just before the next
        worker, which is on time: that pair would put ``rate + 2`` requests in some
        one-second window. The slots are ``1 / (HEADROOM * rate)`` apart, so a late
        worker's delay is made up again at 2.5% of a slot per request.
        """
        with self._locked():
            data = self._mapped()
            (last,) = _RELEASE.unpack_from(data, _RELEASE_AT)
            release = max(self._clock(), last + 1.0 / rate)
            _RELEASE.pack_into(data, _RELEASE_AT, release)
        self._wait_until(release)

    def _wait_until(self, start: float) -> None:
        """Sleep until ``start`` (monotonic seconds), noticing an abort meanwhile."""
        while True:
            delay = start - self._clock()
            if delay <= 0:
                return
            self._sleep(min(delay, _SLEEP_STEP))
            self.check()

    def defer(self, seconds: float) -> None:
        """Push every worker's next slot at least ``seconds`` into the future."""
        with self._locked():
            tat, count, _, _ = self._read()
            self._write(max(tat, self._clock() + seconds), count)

    def abort(self, error: RunAborted) -> None:
        """Stop the run: every later :meth:`acquire` raises the same error."""
        with self._locked():
            if not self._read()[2]:
                self._set_abort(type(error), str(error))

    def _set_abort(self, cls: type[RunAborted], reason: str) -> None:
        kind = next((k for c, k in _ABORT_KINDS.items() if issubclass(cls, c)), 1)
        encoded = reason.encode("utf-8")[:_REASON_MAX]
        data = self._mapped()
        tat, count, _, _ = _HEADER.unpack_from(data, 0)
        data[_HEADER.size : _HEADER.size + len(encoded)] = encoded
        _HEADER.pack_into(data, 0, tat, count, kind, len(encoded))

    def check(self) -> None:
        """Raise the run's abort error, if it has one."""
        error = self.aborted()
        if error is not None:
            raise error

    def aborted(self) -> RunAborted | None:
        """The error that stopped the run, or ``None`` while it goes on."""
        _, _, kind, reason = self._read()
        return _ABORT_CLASSES[kind](reason) if kind else None

    @property
    def requests_sent(self) -> int:
        """Requests let through so far, by every worker."""
        return self._read()[1]

    def close(self) -> None:
        """Remove the shared file (the creating process only)."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._pid = None
        if os.getpid() != self._owner_pid:
            return
        if self._held is not None:
            os.close(self._held)  # the record's last reference in this process
            self._held = None
        elif self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> RequestGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Locked:
    """Hold the process-local thread lock, then the cross-process flock."""

    def __init__(self, gate: RequestGate) -> None:
        self.gate = gate

    def __enter__(self) -> None:
        self.gate._mapped()
        self.lock = self.gate._thread_lock
        self.lock.acquire()
        self.processes = self.gate.processes
        if self.processes:
            fd = self.gate._fd
            assert fd is not None
            self.fd: int = fd
            fcntl.flock(fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        if self.processes:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.lock.release()


def shared_file(name: str, content: bytes) -> tuple[int | None, str]:
    """A file for the processes of one machine to share, that nothing outlives:
    ``(descriptor, path)``; other processes open ``path``, the creator keeps the
    descriptor open for as long as they may, and closes it when done.

    On Linux it has no name at all: an ``os.memfd_create`` file, reached by other
    processes through ``/proc/<creator pid>/fd/<descriptor>`` (proc(5); it opens the
    same file anew), so the kernel frees it with its last descriptor, even when
    every process using it is killed by SIGKILL. Elsewhere (no memfd or no /proc) it
    is a file named ``<name>-<pid>-*`` in /dev/shm or the temporary directory,
    ``(None, path)``: the creator must unlink it (a SIGKILL leaves it behind).
    """
    if hasattr(os, "memfd_create"):
        try:
            fd = os.memfd_create(name, getattr(os, "MFD_CLOEXEC", 0))
        except OSError:  # a kernel without memfd (before 3.17) or a sandbox refusing it
            fd = None
        if fd is not None:
            path = f"/proc/{os.getpid()}/fd/{fd}"
            if os.path.exists(path):
                os.write(fd, content)
                return fd, path
            os.close(fd)
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix=f"{name}-{os.getpid()}-", dir=directory)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    return None, path


# Serialises each process's first use of a gate (opening its file and map).
_open_lock = threading.Lock()


# This process's id, kept up to date across fork: os.getpid is a system call, and
# the gate asks on every request.
_pid = os.getpid()


def _reset_after_fork() -> None:
    global _open_lock, _pid
    _open_lock = threading.Lock()
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)
