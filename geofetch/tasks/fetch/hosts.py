"""Per-host politeness across every thread and process of a run (see
:mod:`geofetch.tasks.fetch`): the per-host cap, at most ``per_host`` requests in
flight per host name (:class:`HostSlots`), and robots.txt's ``Crawl-delay``, a
minimum gap between two requests to an origin (:class:`CrawlDelays`). Both keep
their state in small files of the run's directory (:class:`RunDirectory`), shared
under ``flock``, which the kernel releases when a holder dies."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from ...core.gate import Gate
from .urls import digest

_SLOT_POLL = (0.005, 0.02)  # first and longest wait, seconds, for a free host slot
_SLEEP_STEP = 0.05  # longest sleep, seconds, between looks at an aborted run
# An origin's pacing record: the next time reserved, the last request let go
# (time.monotonic seconds: one clock for every process on the machine).
_PACE = struct.Struct("<dd")
_Change = Callable[[float, float, float], tuple[float, float, float]]


#: The janitor: waits for its standard input to close (the run's process ended, in any
#: way, SIGKILL included), then removes the directory named by its argument.
_JANITOR = (
    "import shutil, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_IGN)\n"
    "sys.stdin.buffer.read()\n"
    "shutil.rmtree(sys.argv[1], ignore_errors=True)\n"
)


class RunDirectory:
    """A run's temporary directory (``geofetch-fetch-*`` in /dev/shm, else the temp
    dir) that nothing outlives, even a SIGKILL of the run's process.

    A directory cannot be nameless as a file can (``memfd``), so a small janitor
    process, in a session of its own (a signal to the run's process group does not
    reach it), holds the reading end of a pipe whose writing end only the run's
    process has: when that process ends, however it ends, the janitor reads EOF,
    removes the directory and exits; this is how ``multiprocessing``'s resource
    tracker cleans up after a killed program. :meth:`close` removes the directory
    at once and lets the janitor go. Where the janitor cannot be started (no
    interpreter to run), the directory is still removed by :meth:`close`.
    """

    def __init__(self) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.path = tempfile.mkdtemp(prefix="geofetch-fetch-", dir=base)
        self._janitor: subprocess.Popen[bytes] | None = None
        try:
            self._janitor = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _JANITOR, self.path],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError:
            pass  # close() still removes it; only a SIGKILL would leave it

    def close(self) -> None:
        """Remove the directory and end the janitor (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        janitor, self._janitor = self._janitor, None
        if janitor is not None:
            if janitor.stdin is not None:
                janitor.stdin.close()
            try:
                janitor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                janitor.kill()
                janitor.wait()


class HostSlots:
    """At most ``per_host`` requests in flight per host name, across threads and
    processes: ``per_host`` lock files per host in ``directory`` (see the module
    docstring). ``per_host=None`` is no cap. Picklable."""

    def __init__(self, directory: str, per_host: int | None) -> None:
        self.directory = directory
        self.per_host = per_host

    @contextlib.contextmanager
    def hold(self, host: str, gate: Gate | None = None) -> Iterator[None]:
        """Hold one of ``host``'s slots; raise the run's abort error while waiting."""
        if not self.per_host:
            yield
            return
        prefix = os.path.join(self.directory, "host-" + digest(host.lower()))
        wait = _SLOT_POLL[0]
        first = random.randrange(self.per_host)  # spread the workers over the slots
        while True:
            for i in range(self.per_host):
                fd = os.open(f"{prefix}.{(first + i) % self.per_host}", os.O_RDWR | os.O_CREAT,
                             0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue
                    raise
                try:
                    yield
                finally:
                    os.close(fd)  # closing the descriptor releases the lock
                return
            if gate is not None:
                gate.check()
            time.sleep(wait)
            wait = min(wait * 2, _SLOT_POLL[1])


class CrawlDelays:
    """robots.txt's ``Crawl-delay``: at least ``delay`` seconds between two requests
    to one origin, across threads and processes. Picklable.

    One small file per origin in ``directory`` holds two times, read and written
    under ``flock``: the next time reserved and the time the last request was let
    go. :meth:`wait` reserves a time ``delay`` after the last reservation and sleeps
    until it, then, under the lock again, lets the request go no sooner than
    ``delay`` after the last one that went (a worker that woke late must not land
    just before the next one, which is on time).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def wait(self, origin: str, delay: float, gate: Gate | None = None) -> None:
        """Sleep until a request to ``origin`` may go, ``delay`` seconds after the
        previous one; raise the run's abort error while waiting."""
        def reserve(reserved: float, last: float, now: float) -> tuple[float, float, float]:
            start = max(now, reserved, last + delay)
            return start, start + delay, last

        self._sleep_until(self._update(origin, reserve), gate)

        def release(reserved: float, last: float, now: float) -> tuple[float, float, float]:
            go = max(now, last + delay)
            return go, max(reserved, go + delay), go

        self._sleep_until(self._update(origin, release), gate)

    def sent(self, origin: str) -> None:
        """A request to ``origin`` went now outside :meth:`wait` (its robots.txt,
        before its delay was known): the next waits its delay from now."""
        def note(reserved: float, last: float, now: float) -> tuple[float, float, float]:
            return now, reserved, max(last, now)

        self._update(origin, note)

    def _update(self, origin: str, change: _Change) -> float:
        """Apply ``change(reserved, last, now) -> (result, reserved, last)`` to the
        origin's record under its lock; return ``result``."""
        fd = os.open(os.path.join(self.directory, "pace-" + digest(origin)),
                     os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = os.pread(fd, _PACE.size, 0)
            reserved, last = _PACE.unpack(data) if len(data) == _PACE.size else (0.0, 0.0)
            if not last:
                last = -math.inf
            result, reserved, last = change(reserved, last, time.monotonic())
            os.pwrite(fd, _PACE.pack(reserved, last if math.isfinite(last) else 0.0), 0)
        finally:
            os.close(fd)  # closing the descriptor releases the lock
        return result

    @staticmethod
    def _sleep_until(when: float, gate: Gate | None) -> None:
        while True:
            if gate is not None:
                gate.check()
            left = when - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _SLEEP_STEP))
