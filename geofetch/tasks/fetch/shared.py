"""Per-host politeness on the run's Redis, for a fetch whose workers run on several
machines (``--gate redis://...``): the same three duties as :mod:`.hosts` and
:class:`~.robots.RobotsBook`, whose files live on one machine only.

* :class:`SharedHostSlots`: at most ``per_host`` requests in flight per host name, a
  sorted set of leases per host (``shared.lua``, atomic on Redis): a holder that dies
  gives its slot back when its lease (:data:`LEASE_SECONDS`) ends.
* :class:`SharedCrawlDelays`: robots.txt's ``Crawl-delay`` between two requests to an
  origin, reserved and released on Redis's clock, as :class:`~.hosts.CrawlDelays`.
* :class:`SharedRobotsBook`: each origin's robots.txt asked once per run, by whichever
  worker takes the origin's lock first; the others wait for its verdict.

Host slots and pacing are kept under the gate's name (runs that share a
``--gate-name`` share them, as they share the rate); robots.txt verdicts are the
run's own. Losing Redis raises :class:`~geofetch.exceptions.GateUnavailable`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ...core.gate import Gate
from ...core.redis_gate import RedisGate
from ...exceptions import GateUnavailable
from .robots import Decided, RobotsVerdict
from .urls import digest

#: Seconds a host slot is held at most: a dead holder's slot comes back after it.
LEASE_SECONDS = 300.0
#: Seconds a robots.txt download may hold its origin's lock before another asks.
ROBOTS_LOCK_SECONDS = 120.0
_POLL = (0.005, 0.05)  # first and longest wait, seconds, for a slot or a verdict
_SLEEP_STEP = 0.05


def _sleep(seconds: float, gate: Gate | None) -> None:
    until = time.monotonic() + seconds
    while True:
        if gate is not None:
            gate.check()
        left = until - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _SLEEP_STEP))


class SharedHostSlots:
    """At most ``per_host`` requests in flight per host name, on every machine of
    the run (``per_host=None``: no cap). Picklable."""

    def __init__(self, store: RedisGate, per_host: int | None) -> None:
        self.store = store
        self.per_host = per_host

    @contextlib.contextmanager
    def hold(self, host: str, gate: Gate | None = None) -> Iterator[None]:
        """Hold one of ``host``'s slots; raise the run's abort error while waiting."""
        if not self.per_host:
            yield
            return
        key = self.store.shared_key("host", digest(host.lower()))
        token = uuid.uuid4().hex
        script = self.store.script(__package__, "shared.lua")
        args = ["take", self.per_host, token, int(LEASE_SECONDS * 1e6)]
        wait = _POLL[0]
        while not int(self.store.execute(lambda _: script(keys=[key], args=args))):
            _sleep(wait, gate)
            wait = min(wait * 2, _POLL[1])
        try:
            yield
        finally:
            with contextlib.suppress(GateUnavailable):  # Redis gone: the lease ends
                self.store.execute(lambda _: script(keys=[key], args=["give", 0, token]))


class SharedCrawlDelays:
    """robots.txt's ``Crawl-delay`` per origin, across every machine. Picklable."""

    def __init__(self, store: RedisGate) -> None:
        self.store = store

    def _pace(self, origin: str, op: str, delay: float) -> float:
        key = self.store.shared_key("pace", digest(origin))
        script = self.store.script(__package__, "shared.lua")
        wait = self.store.execute(lambda _: script(keys=[key], args=[op, int(delay * 1e6)]))
        return int(wait) / 1e6

    def wait(self, origin: str, delay: float, gate: Gate | None = None) -> None:
        """Sleep until a request to ``origin`` may go, ``delay`` seconds after the
        previous one; raise the run's abort error while waiting."""
        _sleep(self._pace(origin, "reserve", delay), gate)
        _sleep(self._pace(origin, "release", delay), gate)

    def sent(self, origin: str) -> None:
        """A request to ``origin`` went now outside :meth:`wait`."""
        self._pace(origin, "note", 0.0)


class SharedRobotsBook:
    """Each origin's robots.txt verdict, decided once per run on any machine.
    Picklable."""

    def __init__(self, store: RedisGate) -> None:
        self.store = store
        self._known: dict[str, RobotsVerdict] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "_known": {}}

    def _stored(self, key: str) -> RobotsVerdict | None:
        record = self.store.execute(lambda client: client.hgetall(key))
        return RobotsVerdict(record["kind"], record["text"]) if record else None

    def lookup(self, origin: str, download: Callable[[], Decided]) -> Decided:
        """The verdict for ``origin``, with the requests this call made and the error
        that left it undecided (the run was aborted), if any."""
        known = self._known.get(origin)
        if known is not None:
            return known, 0, None
        key = self.store.shared_key("robots", digest(origin), per_run=True)
        lock, token = key + ":lock", uuid.uuid4().hex
        wait = _POLL[0]
        while True:
            verdict = self._stored(key)
            if verdict is not None:
                self._known[origin] = verdict
                return verdict, 0, None
            took = self.store.execute(lambda client: client.set(
                lock, token, nx=True, px=int(ROBOTS_LOCK_SECONDS * 1000)))
            if took:
                # the holder before us may have stored its verdict and let go of the
                # lock between our read and our take: read again under the lock
                verdict = self._stored(key)
                if verdict is None:
                    break
                self._known[origin] = verdict
                with contextlib.suppress(GateUnavailable):
                    self.store.execute(lambda client: client.delete(lock))
                return verdict, 0, None
            _sleep(wait, self.store)
            wait = min(wait * 2, _POLL[1])
        try:
            decided = download()
            found = decided[0]
            if found is not None:
                mapping = {"kind": found.kind, "text": found.text}
                self.store.execute(lambda client: client.hset(key, mapping=mapping))
                self.store.execute(lambda client: client.pexpire(key, 24 * 3600 * 1000))
                self._known[origin] = found
            return decided
        finally:
            with contextlib.suppress(GateUnavailable):
                self.store.execute(lambda client: client.delete(lock))
