"""Geocoding on the job engine: the worker's task, the row rules, the public calls."""

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
from ..exceptions import InvalidAnswer, InvalidQuery, UsageError, describe
from ..models import (
    ADDRESS_FIELDS,
    FAILED,
    INVALID,
    MAX_QUERY_LENGTH,
    NOT_FOUND,
    OK,
    GeocodeResult,
    Rejected,
)
from ..normalize import normalize_query
from ..options import Progress, RunOptions
from ..providers import Answer, Provider, get_provider
from ..redact import redact


class GeocodeWorker:
    """One worker's task function: geocode one query, never raise.

    It opens its own copy of the provider once (a session, a connection pool) and
    keeps it until :meth:`close`.
    """

    def __init__(self, provider: Provider, gate: Gate | None, policy: RetryPolicy,
                 timeout: float) -> None:
        self.provider = copy.copy(provider)
        self.provider.open()
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.secrets = provider.secrets()

    def close(self) -> None:
        """Close this worker's provider (its sessions and connections)."""
        self.provider.close()

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
        problem = check_coordinates(answer.lat, answer.lng)
        if problem is not None:
            return GeocodeResult(query, status=FAILED, attempts=attempts, elapsed=elapsed,
                                 error=redact(describe(problem), self.secrets), raw=answer.raw)
        raw, address = answer.raw, answer.formatted_address
        if self.secrets:  # a server that echoes the key must not put it in the output
            raw = redact_values(raw, self.secrets)
            address = redact(address, self.secrets) if address is not None else None
        if not answer.found:
            return GeocodeResult(query, status=NOT_FOUND, attempts=attempts, elapsed=elapsed,
                                 raw=raw)
        return GeocodeResult(
            query,
            lat=answer.lat,
            lng=answer.lng,
            formatted_address=address,
            status=OK,
            attempts=attempts,
            elapsed=elapsed,
            raw=raw,
            **answer_fields(answer, self.secrets),
        )


def answer_fields(answer: Answer, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The answer's address fields, each string with ``secrets`` masked and a
    confidence outside 0..1 (or not finite) dropped."""
    fields = answer.fields()
    for name, value in fields.items():
        if isinstance(value, str) and secrets:
            fields[name] = redact(value, secrets)
    confidence = fields.get("confidence")
    if confidence is not None and (isinstance(confidence, bool)
                                   or not isinstance(confidence, int | float)
                                   or not 0.0 <= confidence <= 1.0):
        fields["confidence"] = None
    return fields


def redact_values(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` (a decoded JSON answer) with every string's secrets masked."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: redact_values(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v, secrets) for v in value]
    return value


def check_coordinates(lat: object, lng: object) -> InvalidAnswer | None:
    """Why ``(lat, lng)`` is no answer (not finite, out of range, one missing), or None.

    Latitude lies in -90..90 and longitude in -180..180 degrees (WGS 84). ``None``
    for both is a not-found answer, which is fine.
    """
    if lat is None and lng is None:
        return None
    for name, value, limit in (("lat", lat, 90.0), ("lng", lng, 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return InvalidAnswer(f"{name} is not a number: {value!r}")
        if not math.isfinite(value):
            return InvalidAnswer(f"{name} is not finite: {value!r}")
        if not -limit <= value <= limit:
            return InvalidAnswer(f"{name} {value!r} is outside -{limit:g}..{limit:g}")
    return None


def cached_fields(entry: CacheEntry) -> dict[str, Any]:
    """The address fields a cache entry holds (unknown names ignored)."""
    stored = entry.fields or {}
    return {name: stored.get(name) for name in ADDRESS_FIELDS}


class GeocodeWork:
    """The geocoding rules a :class:`~geofetch.job.Job` needs."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.namespace = provider.cache_namespace()
        self.uses_network = provider.uses_network
        self.cacheable = provider.cacheable
        self.secrets = provider.secrets()
        self.default_rate = provider.default_rate
        self.max_rate = provider.max_rate

    def open(self) -> None:
        """Nothing to make: each worker opens its own provider."""

    def close(self) -> None:
        """Nothing to release."""

    def invalid(self, query: str) -> GeocodeResult | None:
        if isinstance(query, Rejected):
            return GeocodeResult(str(query), status=INVALID, error=query.error)
        if not isinstance(query, str):
            problem = InvalidQuery(f"not text but {type(query).__name__}")
        elif not query.strip():
            problem = InvalidQuery("blank place")
        elif len(query) > MAX_QUERY_LENGTH:
            problem = InvalidQuery(f"{len(query)} characters, the limit is {MAX_QUERY_LENGTH}")
        else:
            return None
        return GeocodeResult(str(query), status=INVALID, error=describe(problem))

    def key(self, query: str) -> str:
        return normalize_query(query)

    def failed(self, query: str, error: str) -> GeocodeResult:
        return GeocodeResult(query, status=FAILED, error=error)

    def from_cache(self, query: str, entry: CacheEntry) -> GeocodeResult:
        problem = check_coordinates(entry.lat, entry.lng) if entry.status == OK else None
        if problem is not None:  # an entry stored before answers were checked
            return GeocodeResult(query, status=FAILED, error=describe(problem), raw=entry.raw)
        return GeocodeResult(query, lat=entry.lat, lng=entry.lng,
                             formatted_address=entry.formatted_address, status=entry.status,
                             raw=entry.raw, **cached_fields(entry))

    def to_cache(self, result: GeocodeResult) -> CacheEntry | None:
        if result.status not in (OK, NOT_FOUND):
            return None
        fields = {k: v for k, v in result.fields().items() if v is not None}
        return CacheEntry(result.status, result.lat, result.lng, result.formatted_address,
                          result.raw, fields or None)

    def for_query(self, result: GeocodeResult, query: str) -> GeocodeResult:
        return result if result.query == query else replace(result, query=query)

    def worker_spec(self, gate: Gate | None, policy: RetryPolicy,
                    timeout: float) -> Callable[[], GeocodeWorker]:
        return functools.partial(GeocodeWorker, self.provider, gate, policy, timeout)


def check_policy(provider: Provider, options: RunOptions | None) -> None:
    """Raise :class:`UsageError` when the run goes against the service's usage policy
    in a way geofetch refuses: a distributed executor (``dask``) where the policy
    forbids one (:attr:`Provider.distributed_forbidden`)."""
    if (options is not None and options.executor == "dask"
            and provider.distributed_forbidden is not None):
        raise UsageError(provider.distributed_forbidden)


def geocode_job(
    places: Iterable[str],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
    options: RunOptions | None = None,
    window: int | None = None,
    keep_raw: bool = True,
) -> Job[GeocodeResult]:
    """Build (but do not start) a geocoding :class:`~geofetch.core.job.Job`.

    ``provider``, ``key`` and ``base_url`` as :func:`geocode_many`; ``options`` the
    run's :class:`~geofetch.options.RunOptions` (defaults when None). Enter the job
    (``with``) and iterate it for results; raises :class:`UsageError` for a bad
    provider or option before anything starts.
    """
    instance = get_provider(provider, key=key, base_url=base_url, countries=countries,
                            language=language)
    check_policy(instance, options)
    return Job(places, GeocodeWork(instance), options, window=window, keep_raw=keep_raw)


def iter_geocode(
    places: Iterable[str],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
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
) -> Iterator[GeocodeResult]:
    """Geocode ``places`` lazily: one result per place, in input order, in bounded
    memory (the input is read only a window ahead of the results).

    Options as :func:`geocode_many`; they are checked before the first place is
    read. Closing the iterator early stops the run and releases its workers.
    """
    options = RunOptions(executor=executor, workers=workers, threads=threads, rate=rate,
                         retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                         max_throttled=max_throttled, max_wait=max_wait, progress=progress,
                         gate=gate, gate_name=gate_name, scheduler=scheduler, client=client,
                         chunk=chunk)
    job = geocode_job(places, provider=provider, key=key, base_url=base_url,
                      countries=countries, language=language, options=options)
    return _iterate(job)


def _iterate(job: Job[GeocodeResult]) -> Iterator[GeocodeResult]:
    with job:
        yield from job


def geocode_many(
    places: Iterable[str],
    *,
    provider: str | Provider = "offline",
    key: str | None = None,
    base_url: str | None = None,
    countries: str | Iterable[str] | None = None,
    language: str | None = None,
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
) -> list[GeocodeResult]:
    """Geocode every place; return one :class:`GeocodeResult` per place, in order.

    * ``provider``: ``"offline"`` (default), ``"google"``, ``"nominatim"``, or a
      :class:`~geofetch.providers.Provider` instance; ``key``, ``base_url``,
      ``countries`` (ISO 3166-1 alpha-2 codes, ``"DE,AT"`` or a list: answers only
      there) and ``language`` (a language tag such as ``"de"``; google and nominatim)
      go to a provider named by string.
    * ``executor``, ``workers``, ``threads``, ``rate``, ``retries``, ``timeout``
      (seconds per request, whole), ``cache``, ``max_requests``, ``max_throttled``,
      ``max_wait``, ``progress``, ``gate``, ``gate_name``, ``scheduler``, ``client``,
      ``chunk``: see :class:`~geofetch.options.RunOptions` (``rate=None``: the
      provider's default, ``0``: no limit).

    Per-row failures are in the results. Raises :class:`UsageError` for a bad option
    (before any request) and :class:`CacheError` for an unusable cache file.
    """
    return list(iter_geocode(places, provider=provider, key=key, base_url=base_url,
                             countries=countries, language=language, executor=executor,
                             workers=workers, threads=threads, rate=rate, retries=retries,
                             timeout=timeout, cache=cache, max_requests=max_requests,
                             max_throttled=max_throttled, max_wait=max_wait,
                             progress=progress, gate=gate, gate_name=gate_name,
                             scheduler=scheduler, client=client, chunk=chunk))
