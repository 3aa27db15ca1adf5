"""The per-host cap: at most ``per_host`` requests in flight per host name, across
every thread and process of a run (see :mod:`geofetch.tasks.fetch`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import time
from collections.abc import Iterator

from ...core.ratelimit import RequestGate
from .urls import digest

_SLOT_POLL = (0.005, 0.02)  # first and longest wait, seconds, for a free host slot


class HostSlots:
    """At most ``per_host`` requests in flight per host name, across threads and
    processes: ``per_host`` lock files per host in ``directory`` (see the module
    docstring). ``per_host=None`` is no cap. Picklable."""

    def __init__(self, directory: str, per_host: int | None) -> None:
        self.directory = directory
        self.per_host = per_host

    @contextlib.contextmanager
    def hold(self, host: str, gate: RequestGate | None = None) -> Iterator[None]:
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
