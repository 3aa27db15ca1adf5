"""What every request gate offers: :class:`Gate`, and :func:`open_gate`, which makes the
run's gate from its options.

Two gates implement it: :class:`~geofetch.core.ratelimit.RequestGate` (one machine:
a record in shared memory, ``flock``) and :class:`~geofetch.core.redis_gate.RedisGate`
(any number of machines: a hash on one Redis server, changed by one Lua script).
Workers, retries and the job use nothing but this interface, so any executor runs
with either gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..exceptions import RunAborted

if TYPE_CHECKING:
    from ..options import RunOptions


class Gate(Protocol):
    """Rate limit, budget and abort for one run, shared by all its workers. Picklable."""

    rate: float | None
    max_requests: int | None

    def acquire(self) -> int:
        """Wait for this request's slot; return its ticket; raise :class:`RunAborted`
        if the run stopped."""

    def throttled(self, ticket: int) -> None:
        """Request ``ticket`` got a rate-limit answer: slow the whole run."""

    def succeeded(self) -> None:
        """A clean answer: the run speeds up again towards its configured rate."""

    def defer(self, seconds: float) -> None:
        """Push every worker's next slot at least ``seconds`` into the future."""

    def abort(self, error: RunAborted) -> None:
        """Stop the run: every later :meth:`acquire` raises the same error."""

    def check(self) -> None:
        """Raise the run's abort error, if it has one."""

    def aborted(self) -> RunAborted | None:
        """The error that stopped the run, or ``None`` while it goes on."""

    @property
    def requests_sent(self) -> int:
        """Requests let through so far, by every worker."""

    @property
    def throttle_count(self) -> int:
        """Rate-limit answers seen by the whole run."""

    @property
    def current_rate(self) -> float | None:
        """The rate in force now (requests per second; None: no limit)."""

    def close(self) -> None:
        """Release what the gate holds (the creating process removes shared state)."""


def open_gate(rate: float | None, options: RunOptions) -> Gate:
    """The gate of a run at ``rate`` requests/s (None: no limit) with ``options``.

    ``options.gate`` (a ``redis://`` URL) gives a :class:`RedisGate` named
    ``options.gate_name`` (None: a name of its own); otherwise a one-machine
    :class:`RequestGate`, shared across processes when the executor runs any.
    Raises :class:`~geofetch.exceptions.UsageError` when Redis cannot be reached.
    """
    if options.gate:
        from .redis_gate import RedisGate

        return RedisGate(options.gate, rate, options.max_requests,
                         max_throttled=options.max_throttled, name=options.gate_name)
    from .ratelimit import RequestGate

    return RequestGate(rate, options.max_requests, max_throttled=options.max_throttled,
                       processes=options.executor in ("process", "dask"))
