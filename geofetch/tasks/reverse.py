"""Reverse geocoding on the job engine: points in, addresses out.

The same engine, gate, retries, budget, cache and key redaction as geocoding; what
differs is the question (a point, checked before anything is asked), the worker's
call (:meth:`~geofetch.providers.base.Provider.reverse`) and the result
(:class:`~geofetch.models.ReverseResult`).

The cache and in-run deduplication key a point by its coordinates rounded to
:data:`KEY_DECIMALS` decimal places (1e-6 degree: about 0.11 m), and the provider is
asked the rounded point, so a cached answer is exactly the answer that point gets.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from ..cache import CacheEntry
from ..core.gate import Gate
from ..core.job import Job
from ..core.retry import RetryPolicy, call_with_retries
from ..exceptions import InvalidQuery, UsageError, describe
from ..models import FAILED, INVALID, NOT_FOUND, OK, Rejected, ReverseResult
from ..options import Progress, RunOptions
from ..providers import Provider, get_provider
from ..redact import redact
from .geocode import answer_fields, cached_fields, check_policy, redact_values

#: Decimal places a point is rounded to for the request, the cache and deduplication.
KEY_DECIMALS = 6


class Point(str):
    """A point to reverse geocode, as given: the text is ``"lat,lng"``; ``lat`` and
    ``lng`` are the values as read (CSV cells, or numbers from the library)."""

    lat: object
    lng: object

    def __new__(cls, lat: object, lng: object) -> Point:
        value = super().__new__(cls, f"{_text(lat)},{_text(lng)}")
        value.lat = lat
        value.lng = lng
        return value

    def __reduce__(self) -> tuple[object, ...]:
        return (Point, (self.lat, self.lng))


def _text(value: object) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def parse_point(point: str) -> tuple[float, float]:
    """``(lat, lng)`` in degrees from a :class:`Point` (or ``"lat,lng"`` text),
    rounded to :data:`KEY_DECIMALS` places.

    Raises :class:`~geofetch.exceptions.InvalidQuery` for a blank or non-numeric
    value, NaN or infinity, a latitude outside -90..90 or a longitude outside
    -180..180 (WGS 84 degrees).
    """
    if isinstance(point, Point):
        values: list[object] = [point.lat, point.lng]
    else:
        values = list(point.split(","))
        if len(values) != 2:
            raise InvalidQuery(f"{point!r} is not 'lat,lng'")
    parsed = []
    for name, value, limit in (("lat", values[0], 90.0), ("lng", values[1], 180.0)):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidQuery(f"{name} is blank")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidQuery(f"{name} is not a number: {value!r}")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise InvalidQuery(f"{name} is not a number: {value!r}") from None
        if not math.isfinite(number):
            raise InvalidQuery(f"{name} is not finite: {value!r}")
        if not -limit <= number <= limit:
            raise InvalidQuery(f"{name} {number:g} is outside -{limit:g}..{limit:g}")
        parsed.append(round(number, KEY_DECIMALS) + 0.0)  # + 0.0: no -0.0 in keys
    return parsed[0], parsed[1]


class ReverseWorker:
    """One worker's task function: reverse geocode one point, never raise."""

    def __init__(self, provider: Provider, gate: Gate | None, policy: RetryPolicy,
                 timeout: float) -> None:
        self.provider = copy.copy(provider)
        self.provider.open()
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.secrets = provider.secrets()

    def close(self) -> None:
        """Close this worker's provider."""
        self.provider.close()

    def __call__(self, query: str) -> ReverseResult:
        started = time.perf_counter()
        lat, lng = parse_point(query)  # checked by ReverseWork.invalid already
        try:
            attempted = call_with_retries(
                lambda: self.provider.reverse(lat, lng, timeout=self.timeout),
                self.policy,
                self.gate if self.provider.uses_network else None,
            )
        except Exception as exc:  # a provider bug: still this row's failure only
            return ReverseResult(query, lat, lng, status=FAILED,
                                 error=redact(describe(exc), self.secrets),
                                 elapsed=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        attempts = attempted.attempts if self.provider.uses_network else 0
        if attempted.error is not None:
            return ReverseResult(query, lat, lng, status=FAILED, attempts=attempted.attempts,
                                 error=redact(describe(attempted.error), self.secrets),
                                 elapsed=elapsed)
        answer = attempted.value
        assert answer is not None
        raw, address = answer.raw, answer.formatted_address
        if self.secrets:
            raw = redact_values(raw, self.secrets)
            address = redact(address, self.secrets) if address is not None else None
        if address is None and not answer.found:
            return ReverseResult(query, lat, lng, status=NOT_FOUND, attempts=attempts,
                                 elapsed=elapsed, raw=raw)
        return ReverseResult(query, lat, lng, formatted_address=address, status=OK,
                             attempts=attempts, elapsed=elapsed, raw=raw,
                             **answer_fields(answer, self.secrets))


class ReverseWork:
    """The reverse-geocoding rules a :class:`~geofetch.core.job.Job` needs."""

    def __init__(self, provider: Provider) -> None:
        if not provider.supports_reverse:
            raise UsageError(f"the {provider.name} provider does not reverse geocode")
        self.provider = provider
        self.namespace = "reverse|" + provider.cache_namespace()
        self.uses_network = provider.uses_network
        self.cacheable = provider.cacheable
        self.secrets = provider.secrets()
        self.default_rate = provider.default_rate
        self.max_rate = provider.max_rate

    def open(self) -> None:
        """Nothing to make: each worker opens its own provider."""

    def close(self) -> None:
        """Nothing to release."""

    def invalid(self, query: str) -> ReverseResult | None:
        if isinstance(query, Rejected):
            return ReverseResult(str(query), status=INVALID, error=query.error)
        try:
            parse_point(query)
        except InvalidQuery as exc:
            return ReverseResult(str(query), status=INVALID, error=describe(exc))
        return None

    def key(self, query: str) -> str:
        lat, lng = parse_point(query)
        return f"{lat:.{KEY_DECIMALS}f},{lng:.{KEY_DECIMALS}f}"

    def failed(self, query: str, error: str) -> ReverseResult:
        lat, lng = _point_or_none(query)
        return ReverseResult(str(query), lat, lng, status=FAILED, error=error)

    def from_cache(self, query: str, entry: CacheEntry) -> ReverseResult:
        lat, lng = parse_point(query)
        return ReverseResult(str(query), lat, lng, formatted_address=entry.formatted_address,
                             status=entry.status, raw=entry.raw, **cached_fields(entry))

    def to_cache(self, result: ReverseResult) -> CacheEntry | None:
        if result.status not in (OK, NOT_FOUND):
            return None
        fields = {k: v for k, v in result.fields().items() if v is not None}
        # lat/lng stay empty: the key is the point, the answer is the address
        return CacheEntry(result.status, None, None, result.formatted_address, result.raw,
                          fields or None)

    def for_query(self, result: ReverseResult, query: str) -> ReverseResult:
        if result.query == query:
            return result
        lat, lng = _point_or_none(query)
        return replace(result, query=str(query), lat=lat, lng=lng)

    def worker_spec(self, gate: Gate | None, policy: RetryPolicy,
                    timeout: float) -> Callable[[], ReverseWorker]:
        return functools.partial(ReverseWorker, self.provider, gate, policy, timeout)


def _point_or_none(query: str) -> tuple[float | None, float | None]:
    try:
        return parse_point(query)
    except InvalidQuery:
        return None, None


def as_point(item: Any) -> str:
    """A library input (a ``(lat, lng)`` pair, or ``"lat,lng"`` text) as a query."""
    if isinstance(item, str):
        if isinstance(item, Point | Rejected):
            return item
        parts = item.split(",")
        return Point(*parts) if len(parts) == 2 else Point(item, None)
    try:
        lat, lng = item
    except (TypeError, ValueError):
        return Point(item, None)
    return Point(lat, lng)


def reverse_job(
    points: Iterable[Any],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    max_distance: float | None = None,
    options: RunOptions | None = None,
    window: int | None = None,
    keep_raw: bool = True,
) -> Job[ReverseResult]:
    """Build (but do not start) a reverse-geocoding :class:`~geofetch.core.job.Job`.

    Options as :func:`reverse_many`. Raises :class:`UsageError` for a bad provider or
    option, or a provider that cannot reverse geocode, before anything starts.
    """
    instance = get_provider(provider, key=key, base_url=base_url, countries=countries,
                            language=language, max_distance=max_distance)
    queries = (as_point(item) for item in points)
    check_policy(instance, options)
    return Job(queries, ReverseWork(instance), options, window=window, keep_raw=keep_raw)


def iter_reverse(
    points: Iterable[Any],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    max_distance: float | None = None,
    executor: str = "thread",
    workers: int | None = None,
    threads: int = 1,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    max_throttled: int | None = 20,
    max_wait: float = 300.0,
    progress: Progress = False,
    gate: str | None = None,
    gate_name: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    chunk: int | None = None,
) -> Iterator[ReverseResult]:
    """Reverse geocode ``points`` lazily: one :class:`ReverseResult` per point, in
    input order, in bounded memory. Options as :func:`reverse_many`."""
    options = RunOptions(executor=executor, workers=workers, threads=threads, rate=rate,
                         retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                         max_throttled=max_throttled, max_wait=max_wait, progress=progress,
                         gate=gate, gate_name=gate_name, scheduler=scheduler, client=client,
                         chunk=chunk)
    job = reverse_job(points, provider=provider, key=key, base_url=base_url,
                      countries=countries, language=language, max_distance=max_distance,
                      options=options)
    return _iterate(job)


def _iterate(job: Job[ReverseResult]) -> Iterator[ReverseResult]:
    with job:
        yield from job


def reverse_many(
    points: Iterable[Any],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    max_distance: float | None = None,
    executor: str = "thread",
    workers: int | None = None,
    threads: int = 1,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    max_throttled: int | None = 20,
    max_wait: float = 300.0,
    progress: Progress = False,
    gate: str | None = None,
    gate_name: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    chunk: int | None = None,
) -> list[ReverseResult]:
    """Reverse geocode every point; return one :class:`ReverseResult` per point, in order.

    * ``points``: ``(lat, lng)`` pairs of numbers in WGS 84 degrees (or ``"lat,lng"``
      text); a pair out of range, not numeric, NaN or blank is ``invalid`` and not asked.
    * ``provider``: ``"offline"`` (default: the nearest city of the gazetteer),
      ``"google"`` (``latlng=``), ``"nominatim"`` (``/reverse``), or an instance whose
      ``supports_reverse`` is true; ``key``, ``base_url``, ``countries`` (ISO 3166-1
      alpha-2 codes), ``language`` (google, nominatim) and ``max_distance`` (km,
      offline only, default 50) go to a provider named by string.
    * the run options as :func:`geofetch.geocode_many`.

    Raises :class:`UsageError` for a bad option (before any request) and
    :class:`CacheError` for an unusable cache file.
    """
    return list(iter_reverse(points, provider=provider, key=key, base_url=base_url,
                             countries=countries, language=language,
                             max_distance=max_distance, executor=executor, workers=workers,
                             threads=threads,
                             rate=rate, retries=retries, timeout=timeout, cache=cache,
                             max_requests=max_requests, max_throttled=max_throttled,
                             max_wait=max_wait, progress=progress, gate=gate,
                             gate_name=gate_name, scheduler=scheduler, client=client,
                             chunk=chunk))
