"""Fetching web pages on the job engine: :func:`fetch_many`, :func:`iter_fetch`, and
what ``geofetch fetch`` runs.

One URL, as a worker sees it (each worker has its own ``requests.Session``)::

    url ── not http(s), blank, too long? (parent) ──────────► invalid, no request
     │
     ▼ worker
    robots.txt of the URL's origin: asked once per run ─ disallowed ─► invalid, no request
     │
     ▼  (each redirect hop again: robots, host slot, gate; at most 10 hops)
    host slot (≤ per_host in flight per host name) ─► gate (rate, budget, abort)
     ─► GET, body streamed and cut at max_bytes ─► 3xx with Location? next hop
     │
     ├─ 2xx, whole body ─► ok: title (and ``selected``) parsed with BeautifulSoup
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
* **Timeout.** ``timeout`` seconds bound connecting, each read, and the whole
  response (headers and body) of one request, so a server trickling bytes cannot
  stall a worker; ``Timeout`` is retried like any transient error.
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
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from ...cache import CacheEntry
from ...core.job import Job, progress_option
from ...core.ratelimit import RequestGate
from ...core.retry import RetryPolicy
from ...exceptions import UsageError
from ...models import FAILED, INVALID, FetchResult
from ...providers._http import DEFAULT_USER_AGENT
from .html import check_selector
from .urls import check_url, url_key
from .worker import FetchOptions, FetchWorker

__all__ = ["FetchOptions", "FetchWork", "fetch_job", "fetch_many", "iter_fetch"]


# -- the work, for the Job -------------------------------------------------------


class FetchWork:
    """The fetching rules a :class:`~geofetch.job.Job` needs.

    The run's temporary directory (host slots, robots verdicts) is made when the
    job builds its workers and removed by :meth:`close` (or when the work is
    garbage collected).
    """

    namespace = "fetch"
    uses_network = True
    cacheable = False
    secrets: tuple[str, ...] = ()

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options or FetchOptions()
        self._directory: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def key(self, query: str) -> str:
        """Exact-URL deduplication (paths are case-sensitive)."""
        return url_key(query)

    def invalid(self, query: str) -> FetchResult | None:
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

    def worker_factory(self, gate: RequestGate | None, policy: RetryPolicy,
                       timeout: float) -> Callable[[], FetchWorker]:
        return functools.partial(FetchWorker, self.options, self.directory(), gate, policy,
                                 timeout)

    def directory(self) -> str:
        """The run's temporary directory, made on first use."""
        if self._directory is None:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._directory = tempfile.mkdtemp(prefix="geofetch-fetch-", dir=base)
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._directory, True)
        return self._directory

    def close(self) -> None:
        """Remove the run's temporary directory."""
        if self._finalizer is not None:
            self._finalizer()
        self._directory = self._finalizer = None


#: A fetching job is a plain :class:`~geofetch.job.Job` of :class:`FetchResult`.
FetchJob = Job[FetchResult]


# -- public calls ----------------------------------------------------------------


def fetch_job(
    urls: Iterable[str],
    *,
    executor: str = "thread",
    workers: int | None = None,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    cache: Any = None,
    max_requests: int | None = None,
    select: str | None = None,
    per_host: int | None = 4,
    max_bytes: int = 10_000_000,
    ignore_robots: bool = False,
    progress: Callable[[FetchResult], None] | None = None,
    user_agent: str | None = None,
    window: int | None = None,
) -> FetchJob:
    """Build (but do not start) a fetching job; options as :func:`fetch_many`."""
    del cache  # accepted for symmetry with geocoding: fetched pages are never cached
    if per_host is not None and per_host < 1:
        raise UsageError(f"per_host must be at least 1 (or None for no cap), not {per_host}")
    if max_bytes < 1:
        raise UsageError(f"max_bytes must be at least 1, not {max_bytes}")
    if not timeout > 0:
        raise UsageError(f"timeout must be more than 0 seconds, not {timeout}")
    check_selector(select)
    options = FetchOptions(select=select, per_host=per_host, max_bytes=max_bytes,
                           ignore_robots=ignore_robots,
                           user_agent=user_agent or DEFAULT_USER_AGENT)
    return Job(urls, FetchWork(options), executor=executor, workers=workers, rate=rate,
                    retries=retries, timeout=timeout, max_requests=max_requests,
                    progress=progress, window=window)


def iter_fetch(urls: Iterable[str], **options: Any) -> Iterator[FetchResult]:
    """Fetch ``urls`` lazily: results in input order, bounded memory.

    Options as :func:`fetch_many`.
    """
    with progress_option(options) as options:
        yield from fetch_job(urls, **options)


def fetch_many(urls: Iterable[str], **options: Any) -> list[FetchResult]:
    """Fetch every URL; return one :class:`FetchResult` per URL, in order.

    ``executor`` ``"thread"``, ``"process"`` or ``"serial"``; ``workers`` its size;
    ``rate`` requests per second for the whole run (default None: no limit);
    ``retries`` more attempts for 429, 5xx, timeouts and lost connections;
    ``timeout`` seconds per request (connect, each read, and the whole response);
    ``max_requests`` the run's request budget (robots.txt included); ``select`` a
    CSS selector whose matches' text fills ``selected``; ``per_host`` requests in
    flight per host name at most (None: no cap); ``max_bytes`` the body cap (a
    bigger page is ``failed``, ``TooLarge``); ``ignore_robots`` skips robots.txt;
    ``progress`` is called with each result; ``cache`` is accepted and ignored.
    """
    return list(iter_fetch(urls, **options))
