"""The request gate shared through Redis: one rate limit, budget and abort for workers
on any number of machines (``--gate redis://HOST:PORT/DB``).

Each call is one run of one Lua script (``redis_gate.lua``, loaded once with
``SCRIPT LOAD`` and then called by its SHA1 through redis-py's ``register_script``),
so every step is atomic on the server whatever the number of clients:

* **Rate: GCRA on Redis ``TIME``.** ``acquire`` reserves the next free slot,
  ``start = max(TAT, now, deferral)``, ``TAT = start + 1 / (HEADROOM * rate)``, all
  in the server's clock: one clock for every machine, so no client's drift counts.
  The worker sleeps until its slot and asks again (``go``); a worker that woke more
  than :data:`LATE_US` after its slot gives it up and reserves another, since sent
  late, just before the next worker's slot, it would put ``rate + 1`` requests into
  some one-second window. The 1% headroom absorbs the ``LATE_US + EARLY_US`` (9 ms)
  of jitter that is let through, at any rate: ``HEADROOM x (1 s + 9 ms) < 1 s``, so
  any 1 s window holds at most ``rate`` sends
  (``rate + 1`` at the server with network jitter), and a long run reaches about
  98% of the rate (measured in ``benchmarks/bench_cluster.py``).
* **Budget** (``max_requests``): counted per run; the first request over it aborts
  the run (:class:`~geofetch.exceptions.BudgetExhausted`) for every worker.
* **Abort** (a denied key, a spent quota, too many rate-limit answers in a row, a
  Retry-After over ``--max-wait``): stored once with its reason; every later
  ``acquire`` of the run raises it.
* **Retry-After**: ``defer`` moves the deferral and TAT forward; a worker waking
  before the deferral ends reserves again, so every worker pauses, even one whose
  slot was already reserved.
* **AIMD back-off**: as :mod:`geofetch.core.ratelimit` (a rate-limit answer halves
  the rate once per round, a clean answer adds back 1/20).

Names. The schedule (TAT, deferral, current rate) lives in ``geofetch:{NAME}:schedule``;
runs started with the same ``--gate-name NAME`` share it, so two machines using one
API key stay within one limit together. The budget and the abort are each run's own
(``geofetch:{NAME}:run:ID``): one run's spent budget does not stop another. Without a
name, a run's schedule is its own and is deleted when the run ends. Keys expire a
day after their last use either way.

Losing Redis never blocks a worker and never lets a request out unmetered: a call
that fails raises :class:`~geofetch.exceptions.GateUnavailable`
(``redis://HOST:PORT ...``, never the password) and every later call in that
process fails the same way at once; the job then writes the rows not done as
failed and ends with exit status 3.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import (
    BudgetExhausted,
    GateUnavailable,
    RequestDenied,
    RunAborted,
    Throttled,
    UsageError,
    WaitTooLong,
)
from ..redact import redact
from ..redis_url import check_gate_name, check_gate_url

#: Fraction of the nominal rate actually scheduled (see the module docstring).
HEADROOM = 0.99
#: A worker this many microseconds past its slot gives it up and reserves again.
LATE_US = 8000
#: A worker wakes this much before its slot (a sleep never ends early enough to hurt).
EARLY_US = 1000
#: Keys live this long (ms) after their last use.
KEY_TTL_MS = 24 * 3600 * 1000
#: Longest sleep (seconds) between two looks at an aborted run.
_SLEEP_STEP = 0.25
#: The coordinator looks at the run's abort at most this often (seconds).
_STATE_EVERY = 0.05
#: Connect and read timeouts (seconds): a lost server is noticed, never waited on.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0

_ABORT_CLASSES: dict[int, type[RunAborted]] = {
    1: RequestDenied, 2: BudgetExhausted, 3: Throttled, 4: WaitTooLong,
}
_ABORT_KINDS = {cls: kind for kind, cls in _ABORT_CLASSES.items()}


class RedisGate:
    """A :class:`~geofetch.core.gate.Gate` kept on a Redis server (see the module
    docstring).

    ``url``: ``redis://[user:password@]HOST[:PORT][/DB]``; ``rate``: requests per
    second for the run (None or 0: no limit); ``max_requests``: the run's budget
    (None: none); ``max_throttled``: rate-limit answers in a row that stop the run
    (None: never); ``name``: share the schedule with every run of this name (None:
    a schedule of its own). Picklable: a copy in another process or on another
    machine talks to the same keys. The constructor connects once and raises
    :class:`UsageError` if the server cannot be reached or refuses the script.
    """

    def __init__(
        self,
        url: str,
        rate: float | None = None,
        max_requests: int | None = None,
        *,
        max_throttled: int | None = None,
        name: str | None = None,
    ) -> None:
        self.where = check_gate_url(url)
        if name is not None:
            check_gate_name(name)
        self.url = url
        self.rate = rate or None
        self.max_requests = max_requests
        self.max_throttled = max_throttled
        self.shared = name is not None
        self.name = name or f"run-{uuid.uuid4().hex}"
        self.run_id = uuid.uuid4().hex
        self.keys = [f"geofetch:{{{self.name}}}:schedule",
                     f"geofetch:{{{self.name}}}:run:{self.run_id}"]
        self._owner = True
        self._reset_local()
        try:
            self._state()
        except GateUnavailable as exc:
            self.close()
            raise UsageError(f"--gate: {exc}") from None

    def _reset_local(self) -> None:
        self._client: Any = None
        self._script: Any = None
        self._lock = threading.Lock()
        self._lost: GateUnavailable | None = None
        self._last_state: tuple[int, str, int, int, float] = (0, "", 0, 0, self.rate or 0.0)
        self._state_at = -1.0
        self._scripts: dict[tuple[str, str], Any] = {}
        # per thread: whether the rate was below its configured value (or rate-limit
        # answers were in a row) at this thread's last acquire
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state["_owner"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_local()

    # -- the server -------------------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._script is None:
                import redis
                from redis.backoff import ExponentialBackoff
                from redis.retry import Retry

                self._client = redis.Redis.from_url(
                    self.url, socket_connect_timeout=CONNECT_TIMEOUT,
                    socket_timeout=READ_TIMEOUT,
                    retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
                    decode_responses=True)
                source = resources.files(__package__).joinpath("redis_gate.lua")
                self._script = self._client.register_script(source.read_text("utf-8"))
            return self._script

    def _call(self, op: str, *extra: object) -> list[Any]:
        if self._lost is not None:
            raise self._lost
        import redis

        script = self._script or self._connect()
        args = [op, self.rate or 0, -1 if self.max_requests is None else self.max_requests,
                -1 if self.max_throttled is None else self.max_throttled,
                HEADROOM, LATE_US, KEY_TTL_MS, *extra]
        try:
            reply: list[Any] = script(keys=self.keys, args=args)
        except redis.RedisError as exc:
            message = self._explain(exc)
            self._lost = GateUnavailable(f"{self.where} cannot be used: {message}")
            raise self._lost from None
        return reply

    def _explain(self, exc: Exception) -> str:
        """One line for a Redis error, never showing the password: a server that wants
        a password, or refuses the one given, says so and how to give one."""
        import redis

        if isinstance(exc, redis.AuthenticationError) or (
                isinstance(exc, redis.ResponseError) and str(exc).startswith("NOAUTH")):
            if urlsplit(self.url).password is None:
                return ("the server needs a password: give it in the URL, "
                        "redis://:PASSWORD@HOST:PORT/DB (or in GEOFETCH_REDIS_URL)")
            return ("the server refused the user name or password in the URL "
                    f"({type(exc).__name__})")
        return redact(f"{type(exc).__name__}: {exc}", self._secrets())

    def shared_key(self, kind: str, part: str, *, per_run: bool = False) -> str:
        """A key beside the gate's, in its hash slot: ``geofetch:{NAME}:KIND:PART``
        (shared by every run of the gate's name), or the run's own with ``per_run``."""
        scope = f"run:{self.run_id}:" if per_run else ""
        return f"geofetch:{{{self.name}}}:{scope}{kind}:{part}"

    def script(self, package: str, name: str) -> Any:
        """The Lua file ``name`` of ``package``, registered on this process's
        connection (``SCRIPT LOAD`` once, then ``EVALSHA``); call it through
        :meth:`execute`."""
        self._script or self._connect()
        with self._lock:
            if (package, name) not in self._scripts:
                source = resources.files(package).joinpath(name).read_text("utf-8")
                self._scripts[package, name] = self._client.register_script(source)
            return self._scripts[package, name]

    def execute(self, call: Callable[[Any], Any]) -> Any:
        """``call(client)`` on this process's Redis connection; a Redis error becomes
        :class:`GateUnavailable` (and every later call fails the same way at once)."""
        if self._lost is not None:
            raise self._lost
        import redis

        self._script or self._connect()
        try:
            return call(self._client)
        except redis.RedisError as exc:
            message = self._explain(exc)
            self._lost = GateUnavailable(f"{self.where} cannot be used: {message}")
            raise self._lost from None

    def _secrets(self) -> tuple[str, ...]:
        parts = urlsplit(self.url)
        return tuple(s for s in (parts.password,) if s)

    def _state(self) -> tuple[int, str, int, int, float]:
        kind, reason, count, total, rate = self._call("state")
        self._last_state = (int(kind), str(reason), int(count), int(total), float(rate))
        self._state_at = time.monotonic()
        return self._last_state

    # -- the gate -----------------------------------------------------------------------

    def acquire(self) -> int:
        """Wait for this request's slot; return its ticket; raise :class:`RunAborted`
        (:class:`GateUnavailable` when Redis is lost) if the run stopped."""
        reply = self._call("acquire")
        ticket = 0
        while True:
            if reply[0] == "abort":
                raise _ABORT_CLASSES.get(int(reply[1]), RequestDenied)(str(reply[2]))
            if reply[0] == "go":
                return ticket
            _, seq, slot, wait_us, recovering = reply
            if not ticket:
                ticket = int(seq)
                self._local.recovering = bool(int(recovering))
            wait = (int(wait_us) - EARLY_US) / 1e6
            if wait <= 0 and int(wait_us) <= 0:
                return ticket  # the slot is now: nothing can have come between
            self._sleep(wait)
            reply = self._call("go", slot)

    def _sleep(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _SLEEP_STEP))
            error = self.aborted() if left > _SLEEP_STEP else None
            if error is not None and not isinstance(error, BudgetExhausted):
                raise error  # a spent budget does not stop a request counted within it

    def throttled(self, ticket: int) -> None:
        """Request ``ticket`` got a rate-limit answer: halve the shared rate (once per
        round); stop the run after ``max_throttled`` in a row."""
        self._call("throttled", ticket)

    def succeeded(self) -> None:
        """A clean answer: the shared rate recovers by steps to the configured one
        (no call at all when this thread's last acquire saw nothing to recover)."""
        if getattr(self._local, "recovering", True):
            self._call("succeeded")

    def defer(self, seconds: float) -> None:
        """No worker of any run sharing this schedule sends for ``seconds``."""
        self._call("defer", repr(float(seconds)))

    def abort(self, error: RunAborted) -> None:
        """Stop the run: every later :meth:`acquire` of any worker raises this error."""
        if isinstance(error, GateUnavailable):
            return
        kind = next((k for c, k in _ABORT_KINDS.items() if isinstance(error, c)), 1)
        self._call("abort", kind, str(error)[:400])

    def check(self) -> None:
        """Raise the run's abort error, if it has one."""
        error = self.aborted()
        if error is not None:
            raise error

    def aborted(self) -> RunAborted | None:
        """The error that stopped the run (:class:`GateUnavailable` when Redis is lost),
        or ``None`` while it goes on. Asks the server at most every 50 ms."""
        if self._lost is not None:
            return self._lost
        if time.monotonic() - self._state_at >= _STATE_EVERY:
            try:
                self._state()
            except GateUnavailable as exc:
                return exc
        kind, reason = self._last_state[:2]
        return _ABORT_CLASSES.get(kind, RequestDenied)(reason) if kind else None

    def _known_state(self) -> tuple[int, str, int, int, float]:
        try:
            return self._state()
        except GateUnavailable:
            return self._last_state  # the last values read: Redis is gone

    @property
    def requests_sent(self) -> int:
        """Requests this run let through, by every worker on every machine."""
        return self._known_state()[2]

    @property
    def throttle_count(self) -> int:
        """Rate-limit answers seen on this schedule."""
        return self._known_state()[3]

    @property
    def current_rate(self) -> float | None:
        """The rate in force now (requests per second; None: no limit)."""
        return self._known_state()[4] or None

    def close(self) -> None:
        """The creating process deletes the run's keys (all of an unnamed gate's,
        schedule included); every process closes its connections. Never raises."""
        client, self._client, self._script = self._client, None, None
        if client is None:
            return
        try:
            if self._owner and self._lost is None:
                client.delete(*(self.keys if not self.shared else self.keys[1:]))
                # and the keys kept beside them (see shared_key): the run's own, or
                # all of an unnamed gate's
                scope = "" if not self.shared else f"run:{self.run_id}:"
                stale = list(client.scan_iter(match=f"geofetch:{{{self.name}}}:{scope}*",
                                              count=1000))
                if stale:
                    client.delete(*stale)
        except Exception:  # noqa: BLE001 - Redis is gone: its keys expire by themselves
            pass
        finally:
            client.close()

    def __enter__(self) -> RedisGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
