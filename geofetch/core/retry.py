"""The retry policy: which errors are retried, how long to wait, how many times.

Backoff is exponential with full jitter (AWS's recommendation, as urllib3's
``Retry`` does with ``backoff_jitter``): before retry ``n`` (1-based) wait a uniform
random time in ``[0, min(backoff_max, backoff_base * 2 ** (n - 1))]``. When the
server sent ``Retry-After`` (RFC 9110, section 10.2.3) the wait is at least that
long, and the shared :class:`~geofetch.core.ratelimit.RequestGate` is deferred by
it, so every worker backs off, not just the one that was told. A ``Retry-After``
longer than ``max_wait`` seconds (default 300) is not slept: the run stops
(:class:`~geofetch.exceptions.WaitTooLong`) as a spent quota does.

A rate-limit answer (HTTP 429, a 503 with ``Retry-After``, Google's
``OVER_QUERY_LIMIT``) also slows the whole run through the gate
(:meth:`RequestGate.throttled`), and each clean answer speeds it up again.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..exceptions import ProviderError, RateLimited, RunAborted, TransientError, WaitTooLong
from .gate import Gate

T = TypeVar("T")
# One generator, not one per call (seeding reads os.urandom); reseeded in a forked
# child so workers do not retry in step.
_RNG = random.Random()
os.register_at_fork(after_in_child=_RNG.seed)


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after the first, for transient errors only.

    ``backoff_base``, ``backoff_max`` and ``max_wait`` (the longest ``Retry-After``
    honoured) are seconds.
    """

    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_wait: float = 300.0

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True if ``error`` on attempt number ``attempt`` (1-based) deserves another."""
        return isinstance(error, TransientError) and attempt <= self.retries

    def delay(self, error: BaseException, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        wait = rng.uniform(0, ceiling)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            wait = max(wait, min(float(retry_after), self.max_wait))
        return wait


def is_rate_limit(error: BaseException) -> bool:
    """True for an answer that asks the client to slow down: HTTP 429 or Google's
    ``OVER_QUERY_LIMIT`` (:class:`RateLimited`), or a 503 with ``Retry-After``."""
    if isinstance(error, RateLimited):
        return True
    return (isinstance(error, ProviderError) and error.status_code == 503
            and error.retry_after is not None)


@dataclass
class Attempted(Generic[T]):
    """What :func:`call_with_retries` ends with: a value or the last error."""

    value: T | None = None
    error: ProviderError | None = None
    attempts: int = 0


def call_with_retries(
    request: Callable[[], T],
    policy: RetryPolicy,
    gate: Gate | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Attempted[T]:
    """Call ``request`` until it answers, a permanent error, or retries run out.

    Each attempt first passes ``gate`` (rate limit, budget, abort). A
    :class:`RunAborted` from the request itself (credentials refused) aborts the
    gate, so every other worker stops too. Non-provider exceptions propagate: the
    engine captures them in the row.
    """
    attempt = 0
    while True:
        ticket = 0
        try:
            if gate is not None:
                ticket = gate.acquire()
        except RunAborted as error:
            return Attempted(error=error, attempts=attempt)
        attempt += 1
        try:
            value = request()
        except RunAborted as error:
            if gate is not None:
                gate.abort(error)
            return Attempted(error=error, attempts=attempt)
        except ProviderError as error:
            retry_after = error.retry_after
            if retry_after is not None and retry_after > policy.max_wait:
                stop = WaitTooLong(
                    f"the server asked to wait {retry_after:g} s (Retry-After), more than "
                    f"--max-wait {policy.max_wait:g} s: {error}")
                if gate is not None:
                    gate.abort(stop)
                return Attempted(error=stop, attempts=attempt)
            if gate is not None and is_rate_limit(error):
                gate.throttled(ticket)
                stopped = gate.aborted()
                if stopped is not None:
                    return Attempted(error=stopped, attempts=attempt)
            if not policy.should_retry(error, attempt):
                return Attempted(error=error, attempts=attempt)
            wait = policy.delay(error, attempt, rng or _RNG)
            if retry_after and gate is not None and is_rate_limit(error):
                gate.defer(float(retry_after))
            sleep(wait)
            continue
        if gate is not None:
            gate.succeeded()
        return Attempted(value=value, attempts=attempt)
