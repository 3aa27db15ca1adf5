"""Test doubles that must be importable by worker processes (spawn/forkserver)."""

from __future__ import annotations

import os
import signal
import time

from geofetch.providers.base import Answer, Provider


class FakeProvider(Provider):
    """Answers from the query itself; some queries misbehave on purpose.

    ``boom`` raises, ``exit`` raises SystemExit, ``die`` kills its worker process,
    ``sigkill`` SIGKILLs it, ``slow`` sleeps, ``nothing`` is not found,
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
        if query == "nothing":
            return Answer(raw={"q": query})
        if query == "unpicklable":
            return Answer(1.0, 2.0, "x", raw=lambda: None)
        return Answer(float(len(query)), float(sum(map(ord, query)) % 180), query.upper(),
                      raw={"q": query})
