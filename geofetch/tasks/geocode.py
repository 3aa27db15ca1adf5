"""Geocoding on the job engine: the worker's task, the row rules, the public calls."""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from ..cache import CacheEntry, open_cache
from ..core.job import Job, progress_option
from ..core.ratelimit import RequestGate
from ..core.retry import RetryPolicy, call_with_retries
from ..exceptions import describe
from ..models import FAILED, INVALID, MAX_QUERY_LENGTH, NOT_FOUND, OK, GeocodeResult
from ..normalize import normalize_query
from ..providers import Provider, get_provider
from ..redact import redact

#: Marks an option the caller did not give (``rate`` falls back to the provider's).
DEFAULT: Any = object()


class GeocodeWorker:
    """One worker's task function: geocode one query, never raise."""

    def __init__(self, provider: Provider, gate: RequestGate | None, policy: RetryPolicy,
                 timeout: float) -> None:
        self.provider = copy.copy(provider)
        self.provider.open()
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.secrets = provider.secrets()

    def __call__(self, query: str) -> GeocodeResult:
        started = time.perf_counter()
        try:
            attempted = call_with_retries(
                lambda: self.provider.geocode(query, timeout=self.timeout),
                self.policy,
                self.gate if self.provider.uses_network else None,
            )
        except Exception as exc:  # a provider bug: still this row's failure only
            return GeocodeResult(query, status=FAILED, error=redact(describe(exc), self.secrets),
                                 elapsed=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        if attempted.error is not None:
            return GeocodeResult(query, status=FAILED, attempts=attempted.attempts,
                                 error=redact(describe(attempted.error), self.secrets),
                                 elapsed=elapsed)
        answer = attempted.value
        assert answer is not None
        attempts = attempted.attempts if self.provider.uses_network else 0
        if not answer.found:
            return GeocodeResult(query, status=NOT_FOUND, attempts=attempts, elapsed=elapsed,
                                 raw=answer.raw)
        return GeocodeResult(
            query,
            lat=answer.lat,
            lng=answer.lng,
            formatted_address=answer.formatted_address,
            status=OK,
            attempts=attempts,
            elapsed=elapsed,
            raw=answer.raw,
        )


class GeocodeWork:
    """The geocoding rules a :class:`~geofetch.job.Job` needs."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.namespace = provider.cache_namespace()
        self.uses_network = provider.uses_network
        self.cacheable = provider.cacheable
        self.secrets = provider.secrets()

    def invalid(self, query: str) -> GeocodeResult | None:
        if not isinstance(query, str):
            return GeocodeResult(str(query), status=INVALID,
                                 error=f"InvalidQuery: not text but {type(query).__name__}")
        if not query.strip():
            return GeocodeResult(query, status=INVALID, error="InvalidQuery: blank place")
        if len(query) > MAX_QUERY_LENGTH:
            return GeocodeResult(query, status=INVALID, error=(
                f"InvalidQuery: {len(query)} characters, the limit is {MAX_QUERY_LENGTH}"))
        return None

    def key(self, query: str) -> str:
        return normalize_query(query)

    def failed(self, query: str, error: str) -> GeocodeResult:
        return GeocodeResult(query, status=FAILED, error=error)

    def from_cache(self, query: str, entry: CacheEntry) -> GeocodeResult:
        return GeocodeResult(query, lat=entry.lat, lng=entry.lng,
                             formatted_address=entry.formatted_address, status=entry.status,
                             raw=entry.raw)

    def to_cache(self, result: GeocodeResult) -> CacheEntry | None:
        if result.status not in (OK, NOT_FOUND):
            return None
        return CacheEntry(result.status, result.lat, result.lng, result.formatted_address,
                          result.raw)

    def for_query(self, result: GeocodeResult, query: str) -> GeocodeResult:
        return result if result.query == query else replace(result, query=query)

    def worker_factory(self, gate: RequestGate | None, policy: RetryPolicy,
                       timeout: float) -> Callable[[], GeocodeWorker]:
        return functools.partial(GeocodeWorker, self.provider, gate, policy, timeout)


def geocode_job(
    places: Iterable[str],
    *,
    provider: str | Provider = "offline",
    executor: str = "thread",
    workers: int | None = None,
    rate: float | None = DEFAULT,
    retries: int = 3,
    timeout: float = 10.0,
    cache: str | Any = None,
    max_requests: int | None = None,
    progress: Callable[[GeocodeResult], None] | None = None,
    key: str | None = None,
    base_url: str | None = None,
    window: int | None = None,
) -> Job[GeocodeResult]:
    """Build (but do not start) a geocoding :class:`~geofetch.job.Job`."""
    instance = get_provider(provider, key=key, base_url=base_url)
    if rate is DEFAULT or rate is None:
        rate = instance.default_rate
    return Job(places, GeocodeWork(instance), executor=executor, workers=workers, rate=rate,
               retries=retries, timeout=timeout, cache=open_cache(cache), max_requests=max_requests,
               progress=progress, window=window)


def iter_geocode(places: Iterable[str], **options: Any) -> Iterator[GeocodeResult]:
    """Geocode ``places`` lazily: results in input order, bounded memory.

    Options as :func:`geocode_many`.
    """
    with progress_option(options) as options:
        yield from geocode_job(places, **options)


def geocode_many(places: Iterable[str], **options: Any) -> list[GeocodeResult]:
    """Geocode every place; return one :class:`GeocodeResult` per place, in order.

    ``provider`` is a name (``"offline"``, ``"google"``, ``"nominatim"``) or an
    instance; ``executor`` ``"thread"``, ``"process"`` or ``"serial"``; ``workers``
    its size (default: 8 threads, one process per CPU); ``rate`` requests per
    second for the whole run (default: the provider's; 0 for none); ``retries``
    more attempts for transient errors; ``timeout`` seconds per request; ``cache``
    a SQLite path, or None; ``max_requests`` the run's request budget;
    ``progress`` ``True`` for a bar on stderr, or a callable given each result.
    """
    return list(iter_geocode(places, **options))
