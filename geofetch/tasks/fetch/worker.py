"""One fetch worker: a URL, hop by hop, through robots.txt, the host cap, the gate
and retries, to one :class:`~geofetch.models.FetchResult` (see :mod:`geofetch.tasks.fetch`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ...core.ratelimit import RequestGate
from ...core.retry import Attempted, RetryPolicy, call_with_retries
from ...exceptions import (
    ContentDecodingError,
    HTTPError,
    RateLimited,
    RobotsDisallowed,
    RunAborted,
    ServerError,
    TooLarge,
    TooManyRedirects,
    describe,
)
from ...http import DEFAULT_USER_AGENT, HTTPClient, Response, retry_after_seconds
from ...models import FAILED, INVALID, OK, FetchResult
from .hosts import HostSlots
from .html import parse_page
from .robots import ALLOW, RULES, UNREACHABLE, Decided, RobotsBook, RobotsVerdict
from .urls import check_url, origin_of

#: Redirect hops followed for a page, and for a robots.txt (RFC 9309: at least 5).
MAX_REDIRECTS = 10
ROBOTS_REDIRECTS = 5
#: Bytes of a robots.txt that are read and parsed (RFC 9309: at least 500 KiB).
ROBOTS_MAX_BYTES = 500 * 1024
#: Bytes of a non-2xx body read to keep the connection; a longer one drops it.
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class FetchOptions:
    """What to fetch and how politely: see :func:`fetch_many`."""

    select: str | None = None
    per_host: int | None = 4
    max_bytes: int = 10_000_000
    ignore_robots: bool = False
    user_agent: str = DEFAULT_USER_AGENT


@dataclass
class _Page:
    """One HTTP response, read."""

    url: str
    status_code: int
    reason: str
    content_type: str | None
    body: bytes
    complete: bool  # False: cut at the cap
    declared: int | None  # Content-Length
    location: str | None  # where a redirect points, absolute
    retry_after: str | None  # the Retry-After header
    elapsed: float  # seconds from sending to the last byte read


class FetchWorker:
    """One worker's task function: fetch one URL, never raise."""

    def __init__(self, options: FetchOptions, directory: str, gate: RequestGate | None,
                 policy: RetryPolicy, timeout: float) -> None:
        self.options = options
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self.slots = HostSlots(directory, options.per_host)
        self.robots = RobotsBook(directory)
        self.client = HTTPClient(headers={
            "User-Agent": options.user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
        })

    def __call__(self, url: str) -> FetchResult:
        started = time.perf_counter()
        try:
            result = self._fetch(url.strip())
        except Exception as exc:  # a bug: still this row's failure only
            result = FetchResult(url, status=FAILED, error=describe(exc))
        result.url = url
        result.elapsed = time.perf_counter() - started
        return result

    def close(self) -> None:
        """Close this worker's connections."""
        self.client.close()

    # -- the page, hop by hop ---------------------------------------------------

    def _fetch(self, url: str) -> FetchResult:
        attempts = 0
        elapsed = 0.0
        last: _Page | None = None
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            if hop and (problem := check_url(current)) is not None:
                error = f"HTTPError: redirected to a URL that cannot be fetched ({problem})"
                return self._failed(last, error, attempts, elapsed)
            if not self.options.ignore_robots:
                refusal, spent = self._robots_refusal(current, redirected=hop > 0)
                attempts += spent
                if refusal is not None:
                    status, error = refusal
                    if status == INVALID:
                        return FetchResult(url, status=INVALID, error=error, attempts=attempts)
                    return self._failed(last, error, attempts, elapsed)
            attempted, page = self._hop(current, self.options.max_bytes)
            attempts += attempted.attempts
            if page is not None:
                last = page
                elapsed += page.elapsed
            if attempted.error is not None:
                error = describe(attempted.error)
                if hop:
                    error += f" (redirected to {current})"
                return self._failed(last, error, attempts, elapsed)
            page = attempted.value
            assert page is not None
            if page.location is None:
                break
            current = page.location
        else:
            error = f"more than {MAX_REDIRECTS} redirects (the last to {current})"
            return self._failed(last, describe(TooManyRedirects(error)), attempts, elapsed)
        if not 200 <= page.status_code <= 299:
            error = describe(HTTPError(f"{page.status_code} {page.reason}".rstrip()))
            return self._failed(page, error, attempts, elapsed)
        if not page.complete:
            cap = self.options.max_bytes
            declared = page.declared is not None and page.declared > cap  # not read at all
            size = f"Content-Length {page.declared}" if declared else "stopped reading there"
            error = f"body larger than the {cap}-byte cap ({size})"
            return self._failed(page, describe(TooLarge(error)), attempts, elapsed)
        return self._ok(page, attempts, elapsed)

    def _ok(self, page: _Page, attempts: int, elapsed: float) -> FetchResult:
        title, selected = parse_page(page.body, page.content_type, self.options.select)
        return FetchResult(
            page.url,
            status_code=page.status_code,
            final_url=page.url,
            elapsed_ms=round(elapsed * 1000),
            bytes=len(page.body),
            content_type=page.content_type,
            title=title,
            selected=selected,
            status=OK,
            attempts=attempts,
        )

    @staticmethod
    def _failed(page: _Page | None, error: str, attempts: int, elapsed: float) -> FetchResult:
        """A failed row: ``error`` is ``"Class: message"``; ``page`` the last response."""
        if page is None:
            return FetchResult("", status=FAILED, error=error, attempts=attempts)
        return FetchResult(
            "",
            status_code=page.status_code,
            final_url=page.url,
            elapsed_ms=round(elapsed * 1000),
            bytes=len(page.body) if page.complete else None,
            content_type=page.content_type,
            status=FAILED,
            error=error,
            attempts=attempts,
        )

    # -- one hop: host slot, gate, retries ------------------------------------------

    def _hop(self, url: str, cap: int) -> tuple[Attempted[Any], _Page | None]:
        """One request with its retries; also the last response seen (for a failure)."""
        seen: list[_Page] = []

        def request() -> _Page:
            page = self._get(url, cap, seen)
            code = page.status_code
            if code == 429 or 500 <= code <= 599:
                retry_after = retry_after_seconds(page.retry_after)
                cls = RateLimited if code == 429 else ServerError
                message = f"{code} {page.reason}".rstrip()
                if retry_after is not None:
                    message += f" (retry after {retry_after:.3g} s)"
                raise cls(message, retry_after=retry_after, status_code=code)
            return page

        try:
            with self.slots.hold(urlsplit(url).hostname or "", self.gate):
                attempted = call_with_retries(request, self.policy, self.gate)
        except RunAborted as error:  # stopped while waiting for a host slot
            return Attempted(error=error), None
        return attempted, (seen[0] if seen else None)

    def _get(self, url: str, cap: int, seen: list[_Page]) -> _Page:
        """One GET, redirects not followed, the body decoded and read to at most
        ``cap`` bytes (:data:`ERROR_BODY_BYTES` for a non-2xx answer); the timeout
        bounds the whole request (see :class:`~geofetch.http.HTTPClient`). The page
        is also left in ``seen``; a body that cannot be decoded leaves its headers
        there (the row keeps the status and type), then raises."""
        with self.client.open(url, timeout=self.timeout, what="page") as exchange:
            ok = 200 <= exchange.status <= 299
            try:
                response = exchange.read(cap if ok else min(cap, ERROR_BODY_BYTES))
            except ContentDecodingError:
                seen[:] = [self._page(Response(url, exchange.status, exchange.reason,
                                               exchange.headers, complete=False,
                                               elapsed=exchange.elapsed))]
                raise
        seen[:] = [self._page(response)]
        return seen[0]

    @staticmethod
    def _page(response: Response) -> _Page:
        return _Page(
            url=response.url,
            status_code=response.status,
            reason=response.reason,
            content_type=response.content_type,
            body=response.body,
            complete=response.complete,
            declared=response.declared_length,
            location=response.location,
            retry_after=response.header("Retry-After"),
            elapsed=response.elapsed,
        )

    # -- robots.txt -----------------------------------------------------------------

    def _robots_refusal(self, url: str, redirected: bool) -> tuple[tuple[str, str] | None, int]:
        """``(status, error)`` if robots.txt stops ``url``, else None; and the requests made."""
        origin = origin_of(url)
        verdict, attempts, error = self.robots.lookup(origin, lambda: self._download_robots(origin))
        if verdict is None:
            return (FAILED, describe(error or RunAborted("run stopped"))), attempts
        if verdict.kind == UNREACHABLE:
            return (FAILED, verdict.text), attempts
        if verdict.allows(url, self.options.user_agent):
            return None, attempts
        if redirected:
            refusal = RobotsDisallowed(f"redirected to {url}, which {origin}/robots.txt disallows")
            return (FAILED, describe(refusal)), attempts
        path = urlsplit(url).path or "/"
        refusal = RobotsDisallowed(f"{origin}/robots.txt disallows {path}")
        return (INVALID, describe(refusal)), attempts

    def _download_robots(self, origin: str) -> Decided:
        url = f"{origin}/robots.txt"
        attempts = 0
        for _ in range(ROBOTS_REDIRECTS + 1):
            attempted, page = self._hop(url, ROBOTS_MAX_BYTES)
            attempts += attempted.attempts
            error = attempted.error
            if isinstance(error, RunAborted):
                return None, attempts, error  # undecided: the run is stopping
            if error is not None:
                note = f"{describe(error)} (fetching {url})"
                return RobotsVerdict(UNREACHABLE, note), attempts, None
            page = attempted.value
            assert page is not None
            if page.location is None:
                break
            if check_url(page.location) is not None:
                return RobotsVerdict(ALLOW), attempts, None
            url = page.location
        else:  # RFC 9309: too many redirects, robots.txt is unavailable
            return RobotsVerdict(ALLOW), attempts, None
        if 200 <= page.status_code <= 299:
            return RobotsVerdict(RULES, page.body.decode("utf-8", "replace")), attempts, None
        return RobotsVerdict(ALLOW), attempts, None  # 4xx (and stray 3xx): unavailable
