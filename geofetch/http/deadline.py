"""A total deadline per request: a watchdog thread shuts the socket of a request
still running when its time is up.

A socket timeout bounds each blocking read, not the request: a server that sends
one byte a second never trips a 2 s read timeout, in its headers or in its body.
So each request takes a :class:`Ticket` from the process's :class:`Watchdog`
before it starts; the connection classes here record, in the ticket of the thread
that uses them, which connection the request is on; and at the deadline the
watchdog shuts that connection's socket down (``shutdown(SHUT_RDWR)``, which wakes
a blocked ``recv`` at once, where ``close`` from another thread would not)::

    worker thread                                 watchdog thread (one per process)
    ticket = arm(timeout) ─────────────────────►  heap of (deadline, n, ticket)
    connect / send / read headers                 wakes at the earliest deadline,
      (the connection notes itself in the ticket)   at most every TICK_SECONDS
    read the body (the response noted in it)      expired and not done:
    disarm(ticket); ticket.fired? ─► Timeout        fired = True, shut its socket

Once the headers are in, the socket is shut through urllib3's public
``HTTPResponse.shutdown()``, which refuses once the connection is back in its
pool, so a late deadline cannot cut the next request on the same connection.
Firing and disarming take one lock, so a ticket is either fired or done, never
both. A disarmed ticket stays in the heap (no search on every request) until its
deadline passes or, once disarmed tickets are more than half the heap (and over
:data:`COMPACT_AFTER`), the heap is rebuilt without them: memory stays bounded by
the requests in flight, whatever the timeout.

The watchdog starts on the first request, sleeps while no ticket is armed, and
is replaced in a forked child (``os.register_at_fork``): the parent's thread and
lock do not survive a fork. With requests of one timeout each new deadline is the
latest, so arming never wakes it: it wakes on its own at most every
:data:`TICK_SECONDS`, however many requests run. What it cannot interrupt: a name
lookup (``getaddrinfo``) and a TLS handshake, each bounded only by the socket
timeout (the request's whole timeout).
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

__all__ = [
    "COMPACT_AFTER",
    "TICK_SECONDS",
    "DeadlineConnectionPool",
    "DeadlineHTTPConnection",
    "DeadlineHTTPSConnection",
    "DeadlineHTTPSConnectionPool",
    "Ticket",
    "Watchdog",
    "watchdog",
]

#: The watchdog's coarsest wake-up interval, seconds: a deadline fires up to this late.
TICK_SECONDS = 0.02
#: Disarmed tickets left in the heap before it may be rebuilt without them.
COMPACT_AFTER = 1024


class Ticket:
    """One request's deadline (``time.monotonic()`` seconds) and what to shut at it."""

    __slots__ = ("connection", "deadline", "done", "fired", "response")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.connection: HTTPConnection | None = None
        self.response: BaseHTTPResponse | None = None
        self.fired = False
        self.done = False

    def expired(self) -> bool:
        """True once the watchdog fired it, or its deadline has passed."""
        return self.fired or time.monotonic() >= self.deadline


# The ticket of the request this thread is making: the connection classes below
# note themselves in it (a pool hands out connections; no argument reaches them).
_CURRENT = threading.local()


class Watchdog:
    """The deadlines of one process's requests, and the thread that enforces them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Ticket]] = []
        self._order = itertools.count()
        self._wake_at = float("inf")  # when the thread will look next; inf: asleep, idle
        self._stale = 0  # disarmed tickets still in the heap (about)
        self._thread = threading.Thread(target=self._run, name="geofetch-http-deadlines",
                                        daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Tickets in the heap: those armed, and some disarmed not yet dropped."""
        return len(self._heap)

    def arm(self, seconds: float) -> Ticket:
        """A ticket expiring ``seconds`` from now, current for this thread's request."""
        ticket = Ticket(time.monotonic() + seconds)
        _CURRENT.ticket = ticket
        with self._lock:
            heapq.heappush(self._heap, (ticket.deadline, next(self._order), ticket))
            if ticket.deadline < self._wake_at:
                self._wake.notify()
        return ticket

    def disarm(self, ticket: Ticket) -> bool:
        """Stop watching ``ticket``; True if it had fired (its socket was shut)."""
        with self._lock:
            ticket.done = True
            ticket.connection = ticket.response = None  # the heap keeps it a while
            if not ticket.fired:
                self._stale += 1
                if self._stale > COMPACT_AFTER and 2 * self._stale > len(self._heap):
                    self._heap = [entry for entry in self._heap if not entry[2].done]
                    heapq.heapify(self._heap)
                    self._stale = 0
        return ticket.fired

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                heap = self._heap
                while heap and heap[0][0] <= now:
                    ticket = heapq.heappop(heap)[2]
                    if ticket.done:
                        self._stale = max(0, self._stale - 1)
                    else:
                        ticket.fired = True
                        _shut(ticket)
                if heap:
                    self._wake_at = max(heap[0][0], now + TICK_SECONDS)
                    self._wake.wait(self._wake_at - now)
                else:
                    self._wake_at = float("inf")
                    self._wake.wait()


def _shut(ticket: Ticket) -> None:
    """Wake whatever blocks on the ticket's socket (called under the watchdog's lock)."""
    response = ticket.response
    if response is not None:
        try:
            response.shutdown()  # refuses once the connection is back in its pool
        except (RuntimeError, ValueError, OSError):
            pass
        return
    connection = ticket.connection
    sock = connection.sock if connection is not None else None
    if sock is not None:
        try:
            # socket.socket's own shutdown: an SSLSocket's would also drop its TLS
            # state under the reading thread's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


_WATCHDOG: Watchdog | None = None
_STARTING = threading.Lock()


def watchdog() -> Watchdog:
    """This process's watchdog, started on first use."""
    global _WATCHDOG
    current = _WATCHDOG
    if current is None:
        with _STARTING:
            if _WATCHDOG is None:
                _WATCHDOG = Watchdog()
            current = _WATCHDOG
    return current


def _forget_after_fork() -> None:
    # The parent's watchdog thread does not exist in the child, and its lock may have
    # been held at the fork: the child starts its own on its first request.
    global _WATCHDOG, _STARTING
    _WATCHDOG = None
    _STARTING = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _note(connection: HTTPConnection) -> None:
    ticket: Ticket | None = getattr(_CURRENT, "ticket", None)
    if ticket is not None and not ticket.done:
        ticket.connection = connection


class DeadlineHTTPConnection(HTTPConnection):
    """urllib3's connection, noted in the current thread's :class:`Ticket` when it
    connects or sends, so the watchdog can shut its socket at the deadline."""

    def connect(self) -> None:
        _note(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)
        super().request(*args, **kwargs)


class DeadlineHTTPSConnection(HTTPSConnection):
    """The TLS twin of :class:`DeadlineHTTPConnection`."""

    def connect(self) -> None:
        _note(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)
        super().request(*args, **kwargs)


class DeadlineConnectionPool(HTTPConnectionPool):
    """A pool of :class:`DeadlineHTTPConnection` (a PoolManager's ``http`` class)."""

    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of :class:`DeadlineHTTPSConnection` (a PoolManager's ``https`` class)."""

    ConnectionCls = DeadlineHTTPSConnection
