"""Test doubles that must be importable by worker processes (spawn/forkserver)."""

from __future__ import annotations

import os
import signal
import time

from geofetch.providers.base import Answer, Provider


class FakeProvider(Provider):
    """Answers from the query itself; some queries misbehave on purpose.

    ``boom`` raises, ``exit`` raises SystemExit, ``die`` kills its worker process,
    ``sigkill`` SIGKILLs it, ``slow`` sleeps, ``hang`` sleeps an hour, ``stop``
    SIGSTOPs its process, ``nothing`` is not found,
    ``unpicklable`` returns a value that cannot be pickled.
    """

    name = "fake"
    uses_network = False
    cacheable = False

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def geocode(self, query: str, *, timeout: float) -> Answer:
        if self.delay:
            time.sleep(self.delay)
        if query == "boom":
            raise RuntimeError("kaboom")
        if query == "exit":
            raise SystemExit(4)
        if query == "interrupt":
            raise KeyboardInterrupt
        if query == "die":
            os._exit(3)
        if query == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if query == "slow":
            time.sleep(0.5)
        if query == "hang":  # a call that ignores every timeout
            time.sleep(3600)
        if query == "stop":  # the worker process stops itself, as SIGSTOP from outside
            os.kill(os.getpid(), signal.SIGSTOP)
            # In a process with other threads the stop can land a moment after kill()
            # returns: the request is still running when it does, as from outside.
            time.sleep(1)
        if query == "nothing":
            return Answer(raw={"q": query})
        if query.startswith("whoami"):  # which process answered, after a slow request
            time.sleep(0.3)
            return Answer(1.0, 2.0, str(os.getpid()))
        if query == "unpicklable":
            return Answer(1.0, 2.0, "x", raw=lambda: None)
        return Answer(float(len(query)), float(sum(map(ord, query)) % 180), query.upper(),
                      raw={"q": query})


class CountingProvider(FakeProvider):
    """A FakeProvider that appends ``open PID TID`` / ``close PID TID`` lines to
    ``log`` (a file, so worker processes can write it too)."""

    name = "counting"

    def __init__(self, log: str, delay: float = 0.0) -> None:
        super().__init__(delay)
        self.log = log

    def _note(self, event: str) -> None:
        import threading

        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"{event} {os.getpid()} {threading.get_ident()}\n")

    def open(self) -> None:
        self._note("open")

    def close(self) -> None:
        self._note("close")


def events(log: str) -> list[tuple[str, int, int]]:
    """The lines a CountingProvider wrote: ``(event, pid, thread id)``."""
    try:
        with open(log, encoding="utf-8") as f:
            return [(e, int(p), int(t)) for e, p, t in (line.split() for line in f)]
    except FileNotFoundError:
        return []


class DiesOnOpen(FakeProvider):
    """A provider whose worker process is SIGKILLed as it starts, every time."""

    name = "dies-on-open"

    def open(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
