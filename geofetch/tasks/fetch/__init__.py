"""Fetching web pages on the job engine: :func:`fetch_many`, :func:`iter_fetch`, and
what ``geofetch fetch`` runs.

One URL, as a worker sees it (each worker has its own :class:`~geofetch.http.HTTPClient`)::

    url ── not http(s), blank, too long? (parent) ──────────► invalid, no request
     │
     ▼ worker
    robots.txt of the URL's origin: asked once per run ─ disallowed ─► invalid, no request
     │
     ▼  (each redirect hop again: robots, host slot, gate; at most 10 hops)
    host slot (≤ per_host in flight per host name) ─► gate (rate, budget, abort)
     ─► GET, body streamed and cut at max_bytes ─► 3xx with Location? next hop
     │
     ├─ 2xx, whole body ─► ok: title (and ``selected``) parsed (lxml; see .html)
     └─ anything else ──► failed: ``HTTPError: 404 Not Found``, ``TooLarge: ...``

Decisions:

* **Too large.** A 2xx body over ``max_bytes`` (default 10 MB) is a ``failed`` row
  with ``TooLarge: ...`` (a permanent error, not retried): a cut page is not the
  page, and ``error`` stays empty for ``ok`` rows, so a truncated ``ok`` row would
  pass silently for a whole one. This is what ``curl --max-filesize`` and Scrapy's
  ``DOWNLOAD_MAXSIZE`` do. A ``Content-Length`` over the cap stops the request
  before any body is read, otherwise reading stops at the cap and the connection is
  dropped. The row keeps ``status_code``, ``final_url``, ``content_type`` and
  ``elapsed_ms``; ``bytes`` and ``title`` stay empty. The cap counts decoded bytes,
  so a compressed body cannot expand past it.
* **robots.txt** is honoured unless ``ignore_robots``, per RFC 9309, for every hop
  (a redirect into a disallowed path is refused too). Each origin's robots.txt is
  asked once per run, by whichever worker needs it first, under a file lock in the
  run's directory; the others (threads or processes) wait for that lock and read the
  verdict it wrote, so hosts are looked up in parallel, not one by one in the parent.
  It is an ordinary request: through the host slot and the gate, so it counts
  against the rate and ``max_requests``. Verdicts: 2xx, the rules (the first
  500 KiB, matched for the product token ``geofetch``); 4xx, everything allowed;
  5xx or no answer after the retries, the origin is *unreachable* and each of its
  URLs is ``failed`` with that error, no request (RFC 9309 forbids crawling a site
  whose robots.txt cannot be read; a dead host so reads ``ConnectionError``, not a
  refusal). A disallowed URL is ``invalid`` with ``RobotsDisallowed: ...`` and no
  request; a redirect into a disallowed URL is ``failed`` (a request was made).
* **Per-host cap.** ``per_host`` lock files per host name in the run's temporary
  directory; a request holds one, taken with ``flock(LOCK_EX | LOCK_NB)``, for its
  attempts and backoff, so the host sees at most ``per_host`` requests from the
  whole run at once, whatever the executor. The kernel drops the lock of a worker
  that dies. A worker finding no free slot polls (every 5 to 20 ms) and notices an
  aborted run. The slot is taken *before* the gate, so a rate slot is never spent
  waiting for a host.
* **Redirects** are followed here, not by ``requests``, so each hop is one request
  through the host slot and the gate (rate and budget see every request), to at most
  10; more is ``failed`` with ``TooManyRedirects``.
* **Timeout.** ``timeout`` seconds bound one request as a whole: connecting, the
  headers and the body together (:mod:`geofetch.http`), so a server trickling bytes
  cannot stall a worker; ``Timeout`` is retried like any transient error.
* **Columns of failed rows.** ``status_code``, ``final_url``, ``elapsed_ms``,
  ``bytes`` and ``content_type`` describe the last HTTP response received for the
  row (empty when none was); ``title`` and ``selected`` are set on ``ok`` rows only.
  ``elapsed_ms`` is the time from sending to the last byte, summed over the
  redirect hops (waits for the gate, a host slot or a retry are not in it).
* **Dedup.** Identical URLs in flight are fetched once; a URL's key folds only the
  case of its scheme and host and drops the fragment (a path is case-sensitive).
  Fetch results are never cached.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from ...cache import CacheEntry
from ...core.gate import Gate
from ...core.job import Job
from ...core.retry import RetryPolicy
from ...exceptions import UsageError
from ...http import DEFAULT_USER_AGENT
from ...models import FAILED, INVALID, FetchResult, Rejected
from ...options import Progress, RunOptions
from .hosts import RunDirectory
from .html import check_selector
from .urls import check_url, url_key
from .worker import MAX_REDIRECTS, ROBOTS_REDIRECTS, FetchOptions, FetchWorker

__all__ = [
    "FetchOptions", "FetchWork", "fetch_job", "fetch_many", "fetch_options", "iter_fetch",
]


# -- the work, for the Job -------------------------------------------------------


class FetchWork:
    """The fetching rules a :class:`~geofetch.core.job.Job` needs.

    The run's temporary directory (host slots, robots verdicts) is made by
    :meth:`open` when the job is entered and removed by :meth:`close` when it is
    left (or when the work is garbage collected).
    """

    namespace = "fetch"
    uses_network = True
    cacheable = False
    secrets: tuple[str, ...] = ()
    #: No rate limit unless ``rate`` is given: the per-host cap and robots.txt's
    #: ``Crawl-delay`` keep a crawl polite per site.
    default_rate: float | None = None
    #: No service-wide cap: robots.txt's Crawl-delay paces each site.
    max_rate: float | None = None
    #: The most requests one URL can take: its hops, and a robots.txt (with its own).
    requests_per_task = MAX_REDIRECTS + 1 + ROBOTS_REDIRECTS + 1

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options or FetchOptions()
        self._directory: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def key(self, query: str) -> str:
        """Exact-URL deduplication (paths are case-sensitive)."""
        return url_key(query)

    def invalid(self, query: str) -> FetchResult | None:
        if isinstance(query, Rejected):
            return FetchResult(str(query), status=INVALID, error=query.error)
        problem = check_url(query)
        if problem is None:
            return None
        return FetchResult(query if isinstance(query, str) else str(query), status=INVALID,
                           error=problem)

    def failed(self, query: str, error: str) -> FetchResult:
        return FetchResult(query, status=FAILED, error=error)

    def from_cache(self, query: str, entry: CacheEntry) -> FetchResult:
        return FetchResult(query, status=entry.status)  # never called: nothing is stored

    def to_cache(self, result: FetchResult) -> CacheEntry | None:
        return None

    def for_query(self, result: FetchResult, query: str) -> FetchResult:
        return result if result.url == query else replace(result, url=query)

    def worker_spec(self, gate: Gate | None, policy: RetryPolicy,
                    timeout: float) -> Callable[[], FetchWorker]:
        return functools.partial(FetchWorker, self.options, self.directory(), gate, policy,
                                 timeout)

    def open(self) -> None:
        """Make the run's temporary directory."""
        self.directory()

    def directory(self) -> str:
        """The run's temporary directory, made on first use."""
        if self._directory is None:
            directory = RunDirectory()  # removed even if this process is SIGKILLed
            self._directory = directory.path
            self._finalizer = weakref.finalize(self, directory.close)
        return self._directory

    def close(self) -> None:
        """Remove the run's temporary directory."""
        if self._finalizer is not None:
            self._finalizer()
        self._directory = self._finalizer = None


#: A fetching job is a plain :class:`~geofetch.core.job.Job` of :class:`FetchResult`.
FetchJob = Job[FetchResult]


# -- public calls ----------------------------------------------------------------


def fetch_options(
    *,
    select: str | None = None,
    per_host: int | None = 4,
    max_bytes: int = 10_000_000,
    ignore_robots: bool = False,
    user_agent: str | None = None,
) -> FetchOptions:
    """Checked :class:`FetchOptions`; raises :class:`UsageError` naming a bad one."""
    if per_host is not None and (isinstance(per_host, bool) or not isinstance(per_host, int)
                                 or per_host < 1):
        raise UsageError(f"per_host must be at least 1 (or None for no cap), not {per_host!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise UsageError(f"max_bytes must be a whole number of at least 1, not {max_bytes!r}")
    if user_agent is not None and (not isinstance(user_agent, str) or not user_agent.strip()):
        raise UsageError(f"user_agent must be non-blank text, not {user_agent!r}")
    check_selector(select)
    return FetchOptions(select=select, per_host=per_host, max_bytes=max_bytes,
                        ignore_robots=bool(ignore_robots),
                        user_agent=user_agent or DEFAULT_USER_AGENT)


def fetch_job(
    urls: Iterable[str],
    *,
    fetch: FetchOptions | None = None,
    options: RunOptions | None = None,
    window: int | None = None,
) -> FetchJob:
    """Build (but do not start) a fetching :class:`~geofetch.core.job.Job`.

    ``fetch`` says what and how politely (:func:`fetch_options`), ``options`` how
    the run goes (:class:`~geofetch.options.RunOptions`; its ``cache`` is ignored:
    pages are never cached). Enter the job (``with``) and iterate it for results.
    """
    return Job(urls, FetchWork(fetch or fetch_options()), options, window=window)


def iter_fetch(
    urls: Iterable[str],
    *,
    select: str | None = None,
    per_host: int | None = 4,
    max_bytes: int = 10_000_000,
    ignore_robots: bool = False,
    user_agent: str | None = None,
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
) -> Iterator[FetchResult]:
    """Fetch ``urls`` lazily: one result per URL, in input order, bounded memory.

    Options as :func:`fetch_many`; they are checked before the first URL is read.
    Closing the iterator early stops the run and releases its workers.
    """
    fetch = fetch_options(select=select, per_host=per_host, max_bytes=max_bytes,
                          ignore_robots=ignore_robots, user_agent=user_agent)
    options = RunOptions(executor=executor, workers=workers, threads=threads, rate=rate,
                         retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                         max_throttled=max_throttled, max_wait=max_wait, progress=progress,
                         gate=gate, gate_name=gate_name, scheduler=scheduler, client=client,
                         chunk=chunk)
    return _iterate(fetch_job(urls, fetch=fetch, options=options))


def _iterate(job: FetchJob) -> Iterator[FetchResult]:
    with job:
        yield from job


def fetch_many(
    urls: Iterable[str],
    *,
    select: str | None = None,
    per_host: int | None = 4,
    max_bytes: int = 10_000_000,
    ignore_robots: bool = False,
    user_agent: str | None = None,
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
) -> list[FetchResult]:
    """Fetch every URL; return one :class:`FetchResult` per URL, in order.

    * ``select``: a CSS selector whose matches' text fills ``selected``;
      ``per_host``: requests in flight per host name at most (None: no cap);
      ``max_bytes``: the body cap on decoded bytes (a bigger page is ``failed``,
      ``TooLarge``); ``ignore_robots`` skips robots.txt; ``user_agent`` replaces
      geofetch's own.
    * ``executor``, ``workers``, ``threads``, ``rate`` (``None``: no limit for fetch, as ``0``),
      ``retries`` (429, 5xx, timeouts, lost connections), ``timeout`` (seconds per
      request, whole: connect, headers and body), ``max_requests`` (robots.txt
      included), ``max_throttled``, ``max_wait``, ``progress``: see
      :class:`~geofetch.options.RunOptions`; ``cache`` is accepted and ignored
      (pages are never cached).

    Raises :class:`UsageError` for a bad option, before any request.
    """
    return list(iter_fetch(urls, select=select, per_host=per_host, max_bytes=max_bytes,
                           ignore_robots=ignore_robots, user_agent=user_agent,
                           executor=executor, workers=workers, threads=threads, rate=rate,
                           retries=retries, timeout=timeout, cache=cache, max_requests=max_requests,
                           max_throttled=max_throttled, max_wait=max_wait,
                           progress=progress, gate=gate, gate_name=gate_name,
                           scheduler=scheduler, client=client, chunk=chunk))
